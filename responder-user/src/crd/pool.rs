//! `IPAddressPool`: the address pools, read by the controller, which writes their
//! status.

use kube::core::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::{metallb_kind, Lenient};
use crate::ipam::{saturating_i64, PoolSpec, PoolStatus};

/// Namespaced; only the pools in the responder's namespace count, as with MetalLB.
/// `spec` reads as the IPAM core's [`PoolSpec`] (its `name` is the object's, see
/// [`IPAddressPool::pool_spec`]).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IPAddressPool {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: Lenient<PoolSpec>,
    #[serde(default)]
    pub status: Option<Lenient<IPAddressPoolStatus>>,
}

metallb_kind!(
    IPAddressPool,
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    spec = Lenient<PoolSpec>,
    status = Lenient<IPAddressPoolStatus>
);

impl IPAddressPool {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    /// The spec for `PoolSet::build`, named after the object; a spec that does not
    /// read becomes an empty pool the IPAM core refuses, so the pool is still
    /// listed among the refused ones rather than silently missing. Returns the
    /// reading error too.
    pub fn pool_spec(&self) -> (PoolSpec, Option<String>) {
        match self.spec.get() {
            Ok(spec) => (
                PoolSpec {
                    name: self.name().to_owned(),
                    ..spec.clone()
                },
                None,
            ),
            Err(error) => (
                PoolSpec::new(self.name(), &[]),
                Some(format!(
                    "address pool {:?}: spec does not read: {error}",
                    self.name()
                )),
            ),
        }
    }
}

/// MetalLB's pool status: counts per family, in int64 fields (an IPv6 pool larger
/// than 2^63 addresses reports `i64::MAX`, as MetalLB does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
}

impl From<&PoolStatus> for IPAddressPoolStatus {
    fn from(status: &PoolStatus) -> Self {
        IPAddressPoolStatus {
            assigned_ipv4: saturating_i64(status.ipv4.assigned),
            assigned_ipv6: saturating_i64(status.ipv6.assigned),
            available_ipv4: saturating_i64(status.ipv4.available),
            available_ipv6: saturating_i64(status.ipv6.available),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_metallb_pool_and_serializes_with_its_type() {
        let pool: IPAddressPool = serde_json::from_str(
            r#"{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool",
                "metadata":{"name":"public","namespace":"responder-system"},
                "spec":{"addresses":["192.0.2.0/24","2001:db8::/64"],"autoAssign":false},
                "status":{"assignedIPv4":1,"assignedIPv6":0,"availableIPv4":255,"availableIPv6":9223372036854775807}}"#,
        )
        .unwrap();
        let (spec, error) = pool.pool_spec();
        assert_eq!(error, None);
        assert_eq!(spec.name, "public");
        assert_eq!(spec.auto_assign, Some(false));
        assert_eq!(
            pool.status.as_ref().unwrap().get().unwrap().available_ipv6,
            i64::MAX
        );
        let json = serde_json::to_value(&pool).unwrap();
        assert_eq!(json["apiVersion"], "metallb.io/v1beta1");
        assert_eq!(json["kind"], "IPAddressPool");
        assert_eq!(json["spec"]["autoAssign"], false);
    }

    #[test]
    fn a_spec_that_does_not_read_is_an_empty_named_pool_and_an_error() {
        let pool: IPAddressPool = serde_json::from_str(
            r#"{"metadata":{"name":"typo"},"spec":{"addresses":"192.0.2.0/24"}}"#,
        )
        .unwrap();
        let (spec, error) = pool.pool_spec();
        assert_eq!(spec.name, "typo");
        assert!(spec.addresses.is_empty());
        let error = error.unwrap();
        assert!(
            error.starts_with("address pool \"typo\": spec does not read: "),
            "{error}"
        );
    }
}

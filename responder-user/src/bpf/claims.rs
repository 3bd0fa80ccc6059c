//! Who claimed a VIP, as the data plane reports it (issue #22): the `CLAIMS`
//! ring buffer, read with tokio's `AsyncFd` by the agent that loaded the
//! program, and the `CLAIMANTS` map (last claimant per VIP key), pinned as
//! `claimants` for `responder vips` and carried over on adoption.

use std::{collections::BTreeMap, io, mem::size_of, path::Path};

use aya::maps::{HashMap, IterableMap as _, MapData, RingBuf};
use responder_common::{
    claims::{Claim, Claimant, CLAIMANTS_MAP, CLAIMS_MAP, PIN_CLAIMANTS},
    VipKey,
};
use tokio::io::unix::AsyncFd;

use super::{
    nic_maps::copy_pinned,
    pins::{map_error, open_pinned, PinDir},
};
use crate::error::Error;

/// Records taken from the ring per wake-up; more wait for the next call, so
/// one burst cannot hold the agent's loop.
const MAX_BATCH: usize = 256;

/// The program's claim maps, until the agent takes the ring to read it.
pub(crate) struct ClaimMaps {
    ring: Option<RingBuf<MapData>>,
    claimants: HashMap<MapData, VipKey, Claimant>,
}

impl ClaimMaps {
    pub(super) fn take(ebpf: &mut aya::Ebpf) -> Result<Self, Error> {
        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(Error::MissingObject(name));
        let ring = take(CLAIMS_MAP)?;
        let claimants = take(CLAIMANTS_MAP)?;
        Ok(ClaimMaps {
            ring: Some(RingBuf::try_from(ring).map_err(|e| map_error("opening", CLAIMS_MAP, e))?),
            claimants: HashMap::try_from(claimants)
                .map_err(|e| map_error("opening", CLAIMANTS_MAP, e))?,
        })
    }

    /// Takes over the last claimants a previous agent's program recorded
    /// (their times are CLOCK_MONOTONIC, the same clock). An agent from
    /// before claims were recorded pinned none: nothing to copy.
    pub(super) fn copy_previous(&mut self, pin_path: &Path) -> Result<(), Error> {
        let copied = copy_pinned(pin_path, PIN_CLAIMANTS, &mut self.claimants)?;
        if copied > 0 {
            tracing::info!(
                claimants = copied,
                "copied the previous agent's last claimants"
            );
        }
        Ok(())
    }

    pub(super) fn pin(&self, pins: &mut PinDir) -> Result<(), Error> {
        pins.pin_replacing(PIN_CLAIMANTS, |path| self.claimants.map().pin(path))
    }

    /// The ring buffer, once: only one reader can consume it.
    pub(super) fn take_reader(&mut self) -> Result<Option<ClaimReader>, Error> {
        let Some(ring) = self.ring.take() else {
            return Ok(None);
        };
        // SAFETY: the RingBuf owns its map's file descriptor, which stays
        // open and the same until the RingBuf (owned by the AsyncFd) drops.
        let fd = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| Error::Filesystem {
                action: "polling the claims ring buffer",
                path: CLAIMS_MAP.into(),
                source: e.into_parts().1,
            })?;
        Ok(Some(ClaimReader { fd }))
    }
}

/// The `CLAIMS` ring buffer, readable from the agent's event loop.
pub(crate) struct ClaimReader {
    fd: AsyncFd<RingBuf<MapData>>,
}

impl ClaimReader {
    /// Waits for claims and returns those in the ring (at most
    /// [`MAX_BATCH`]; the rest on the next call, at once).
    pub(crate) async fn next_batch(&mut self) -> io::Result<Vec<Claim>> {
        loop {
            let mut guard = self.fd.readable_mut().await?;
            let claims = drain(guard.get_inner_mut(), MAX_BATCH);
            if claims.len() < MAX_BATCH {
                // Emptied: wait for the kernel's next wake-up. (tokio does
                // not clear a readiness that arrived while draining.)
                guard.clear_ready();
            }
            if !claims.is_empty() {
                return Ok(claims);
            }
        }
    }
}

/// Takes up to `max` records out of `ring`; a record of another size (a
/// program from another build) is skipped.
pub fn drain(ring: &mut RingBuf<MapData>, max: usize) -> Vec<Claim> {
    let mut claims = Vec::new();
    while claims.len() < max {
        let Some(item) = ring.next() else {
            break;
        };
        if let Some(claim) = decode(&item) {
            claims.push(claim);
        }
    }
    claims
}

/// A ring buffer record as a [`Claim`], if it is one.
pub fn decode(bytes: &[u8]) -> Option<Claim> {
    if bytes.len() != size_of::<Claim>() {
        return None;
    }
    // SAFETY: `Claim` is plain `#[repr(C)]` data valid for any bytes, and
    // exactly that many are read, unaligned.
    Some(unsafe { bytes.as_ptr().cast::<Claim>().read_unaligned() })
}

/// The last claimant of every VIP key in the pinned `claimants` map; empty
/// when nothing is pinned under that name (an agent from before claims were
/// recorded).
pub(super) fn read_pinned_claimants(pin_path: &Path) -> Result<BTreeMap<VipKey, Claimant>, Error> {
    if !pin_path.join(PIN_CLAIMANTS).exists() {
        return Ok(BTreeMap::new());
    }
    let map: HashMap<MapData, VipKey, Claimant> =
        HashMap::try_from(open_pinned(pin_path, PIN_CLAIMANTS)?)
            .map_err(|e| map_error("reading", PIN_CLAIMANTS, e))?;
    map.iter()
        .map(|entry| entry.map_err(|e| map_error("reading", PIN_CLAIMANTS, e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_record_of_the_right_size_only() {
        let claim = Claim {
            at_ns: 7,
            key: VipKey::v4(3, 100, 0, [192, 0, 2, 10]),
            mac: [2, 0, 0, 0, 0, 2],
            _pad: [0; 6],
        };
        // SAFETY: plain data viewed as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts((&claim as *const Claim).cast::<u8>(), size_of::<Claim>())
        };
        assert_eq!(decode(bytes), Some(claim));
        assert_eq!(decode(&bytes[1..]), None);
        assert_eq!(decode(&[bytes, &[0u8; 8][..]].concat()), None);
    }
}

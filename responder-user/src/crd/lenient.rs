//! A spec or status that deserializes whatever the API server holds.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The JSON of a field as stored, and `T` read from it or why it does not read.
/// Serializes back to exactly the stored JSON, so nothing is lost on a round trip.
#[derive(Clone, Debug, PartialEq)]
pub struct Lenient<T> {
    raw: Value,
    parsed: Result<T, String>,
}

impl<T: DeserializeOwned> Lenient<T> {
    pub fn from_value(raw: Value) -> Self {
        let parsed = T::deserialize(&raw).map_err(|e| e.to_string());
        Lenient { raw, parsed }
    }
}

impl<T: Serialize> Lenient<T> {
    pub fn new(value: T) -> Self {
        let raw = serde_json::to_value(&value).unwrap_or(Value::Null);
        Lenient {
            raw,
            parsed: Ok(value),
        }
    }
}

impl<T> Lenient<T> {
    /// The value, or why the stored JSON does not read as one.
    pub fn get(&self) -> Result<&T, &str> {
        self.parsed.as_ref().map_err(String::as_str)
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }
}

/// An absent field reads as `{}`, which every spec and status here accepts.
impl<T: DeserializeOwned> Default for Lenient<T> {
    fn default() -> Self {
        Lenient::from_value(Value::Object(Default::default()))
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Lenient::from_value)
    }
}

impl<T> Serialize for Lenient<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize, Serialize)]
    struct Spec {
        #[serde(default)]
        addresses: Vec<String>,
    }

    #[test]
    fn keeps_a_value_that_does_not_read_with_its_error() {
        let bad: Lenient<Spec> = serde_json::from_str(r#"{"addresses":"192.0.2.0/24"}"#).unwrap();
        let error = bad.get().unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
        assert_eq!(
            serde_json::to_string(&bad).unwrap(),
            r#"{"addresses":"192.0.2.0/24"}"#,
            "round trip"
        );
        let good: Lenient<Spec> =
            serde_json::from_str(r#"{"addresses":["192.0.2.0/24"]}"#).unwrap();
        assert_eq!(good.get().unwrap().addresses, ["192.0.2.0/24"]);
        assert_eq!(
            Lenient::<Spec>::default().get(),
            Ok(&Spec { addresses: vec![] })
        );
    }
}

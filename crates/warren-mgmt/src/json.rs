//! AMQP values to and from the API's JSON: field tables as JSON objects, the way RabbitMQ's
//! management plugin shows and accepts queue, exchange and binding arguments.

use serde_json::{Map, Number, Value};
use warren_codec::{FieldTable, FieldValue, ShortStr};

use crate::ApiError;

/// A field value as JSON.
pub fn value_to_json(v: &FieldValue) -> Value {
    if let Some(i) = v.as_i64() {
        return Value::from(i);
    }
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
        other => match other.as_bytes() {
            Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            None => Value::String(format!("{other:?}")),
        },
    }
}

/// A field table as a JSON object.
pub fn table_to_json(t: &FieldTable) -> Value {
    let mut m = Map::new();
    for (k, v) in t.iter() {
        m.insert(k.to_string(), value_to_json(v));
    }
    Value::Object(m)
}

fn json_to_value(v: &Value) -> Result<FieldValue, ApiError> {
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::from(s.as_str()),
        Value::Array(a) => {
            FieldValue::Array(a.iter().map(json_to_value).collect::<Result<_, _>>()?)
        }
        Value::Object(_) => FieldValue::Table(json_to_table(Some(v))?),
    })
}

/// A JSON object (or nothing) as a field table; anything else is a bad request. An empty
/// array is an empty table, as RabbitMQ reads it (Erlang's empty list): pyrabbit2 sends
/// `"arguments": []` when declaring exchanges and bindings.
pub fn json_to_table(v: Option<&Value>) -> Result<FieldTable, ApiError> {
    let mut t = FieldTable::default();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if k.len() > 255 {
                    return Err(ApiError::BadRequest(format!("argument name too long: {k}")));
                }
                t.insert(ShortStr::from(k.as_str()), json_to_value(v)?);
            }
        }
        Some(_) => return Err(ApiError::BadRequest("arguments must be an object".into())),
    }
    Ok(t)
}

/// The request body as a JSON object: empty is `{}`, anything not JSON is RabbitMQ's
/// `not_json`.
pub fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::BadRequest("not_json".into())),
    }
}

/// A boolean field of a request body (RabbitMQ also accepts the strings "true"/"false").
pub fn bool_field(m: &Map<String, Value>, key: &str, default: bool) -> Result<bool, ApiError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(ApiError::BadRequest(format!("{key} must be a boolean"))),
    }
}

/// A string field of a request body.
pub fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn arguments_are_an_object_nothing_or_an_empty_array() {
        assert!(json_to_table(None).unwrap().is_empty());
        assert!(json_to_table(Some(&json!([]))).unwrap().is_empty());
        assert_eq!(
            json_to_table(Some(&json!({"x-max-length": 1})))
                .unwrap()
                .len(),
            1
        );
        assert!(json_to_table(Some(&json!([1]))).is_err());
        assert!(json_to_table(Some(&json!("x"))).is_err());
    }
}

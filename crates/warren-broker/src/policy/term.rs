//! JSON values printed as RabbitMQ's error texts print the Erlang terms they decode to (`~p`):
//! strings as `<<"s">>`, `null`/`true`/`false` as atoms, arrays as lists, objects as maps.

use serde_json::Value;

/// `~p` of the Erlang term a JSON value decodes to.
pub(crate) fn erlang(v: &Value) -> String {
    let mut out = String::new();
    write(&mut out, v);
    out
}

fn write(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => binary(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("#{");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                binary(out, k);
                out.push_str(" => ");
                write(out, item);
            }
            out.push('}');
        }
    }
}

/// `<<"text">>` with Erlang's escapes for quotes and backslashes.
pub(crate) fn binary(out: &mut String, s: &str) {
    out.push_str("<<\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push_str("\">>");
}

/// Integers as they are; floats as Erlang prints them (`1.5`, `2.0`, `1.0e20`).
fn number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else if f.abs() >= 1e16 || (f != 0.0 && f.abs() < 1e-4) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
            _ => s,
        }
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_prints_as_erlang_terms() {
        assert_eq!(erlang(&json!("x")), "<<\"x\">>");
        assert_eq!(erlang(&json!(-1)), "-1");
        assert_eq!(erlang(&json!(1.5)), "1.5");
        assert_eq!(erlang(&json!(2.0)), "2.0");
        assert_eq!(erlang(&json!(1e20)), "1.0e20");
        assert_eq!(erlang(&json!(null)), "null");
        assert_eq!(erlang(&json!([1, "x"])), "[1,<<\"x\">>]");
        assert_eq!(erlang(&json!({"a": 1})), "#{<<\"a\">> => 1}");
    }
}

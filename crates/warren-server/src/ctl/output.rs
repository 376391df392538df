//! rabbitmqctl's output: banner lines (dropped by `--quiet`), tab-separated tables with a
//! header line (dropped by `--silent`), or `--formatter json`'s array with one object a line.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{CtlError, CtlOptions, Formatter};

/// How to print, from the command line's options.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    quiet: bool,
    silent: bool,
    json: bool,
}

impl Format {
    /// The format `options` ask for.
    pub fn new(options: &CtlOptions) -> Self {
        Format {
            quiet: options.quiet,
            silent: options.silent,
            json: options.formatter == Formatter::Json,
        }
    }

    /// Appends an informational line (`Listing users ...`) unless quiet, silent or JSON.
    pub fn banner(&self, out: &mut String, text: &str) {
        if !(self.quiet || self.silent || self.json) {
            let _ = writeln!(out, "{text}");
        }
    }

    /// Appends a table of `rows`' `columns`.
    pub fn table(&self, out: &mut String, columns: &[String], rows: &[Map<String, Value>]) {
        if self.json {
            out.push_str("[\n");
            for (i, row) in rows.iter().enumerate() {
                // Written by hand: serde_json's map sorts keys, rabbitmqctl keeps column order.
                let fields: Vec<String> = columns
                    .iter()
                    .map(|c| {
                        let value = row.get(c).cloned().unwrap_or(Value::Null);
                        format!("{}:{value}", Value::String(c.clone()))
                    })
                    .collect();
                let sep = if i == 0 { "" } else { "," };
                let _ = writeln!(out, "{sep}{{{}}}", fields.join(","));
            }
            out.push_str("]\n");
            return;
        }
        if !self.silent && !rows.is_empty() {
            let _ = writeln!(out, "{}", columns.join("\t"));
        }
        for row in rows {
            let cells: Vec<String> = columns.iter().map(|c| cell(row.get(c))).collect();
            let _ = writeln!(out, "{}", cells.join("\t"));
        }
    }
}

/// One value as rabbitmqctl prints it: strings bare, lists as `[a, b]`, tables (arguments)
/// as Erlang's `[{"key",value}]`, missing values empty.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let items: Vec<String> = items.iter().map(|i| cell(Some(i))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(Value::Object(m)) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{{\"{k}\",{}}}", erlang_value(v)))
                .collect();
            format!("[{}]", items.join(","))
        }
        Some(other) => other.to_string(),
    }
}

fn erlang_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Object(_) => cell(Some(v)),
        other => other.to_string(),
    }
}

/// The columns asked for, or `default`; an unknown one is refused as rabbitmqctl refuses it.
pub fn columns(
    asked: &[String],
    default: &[&str],
    known: &[&str],
) -> Result<Vec<String>, CtlError> {
    if asked.is_empty() {
        return Ok(default.iter().map(|c| c.to_string()).collect());
    }
    let unknown: Vec<&str> = asked
        .iter()
        .map(String::as_str)
        .filter(|c| !known.contains(c))
        .collect();
    if !unknown.is_empty() {
        return Err(CtlError::Validation(format!(
            "Info key(s) {} are not supported",
            unknown.join(",")
        )));
    }
    Ok(asked.to_vec())
}

/// The objects of a JSON array answer (anything else is an empty list).
pub fn objects(v: Value) -> Vec<Map<String, Value>> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rows(v: Value) -> Vec<Map<String, Value>> {
        objects(v)
    }

    fn format(quiet: bool, silent: bool, json: bool) -> Format {
        Format {
            quiet,
            silent,
            json,
        }
    }

    #[test]
    fn tables_are_tab_separated_with_a_header_unless_silent() {
        let cols = vec!["name".to_string(), "messages".to_string()];
        let r = rows(json!([{"name": "q1", "messages": 3}, {"name": "q2", "messages": 0}]));
        let mut out = String::new();
        format(false, false, false).table(&mut out, &cols, &r);
        assert_eq!(out, "name\tmessages\nq1\t3\nq2\t0\n");
        let mut out = String::new();
        format(false, true, false).table(&mut out, &cols, &r);
        assert_eq!(out, "q1\t3\nq2\t0\n");
        // rabbitmqctl prints no header for an empty listing.
        let mut out = String::new();
        format(false, false, false).table(&mut out, &cols, &[]);
        assert_eq!(out, "");
    }

    #[test]
    fn json_is_one_object_a_line_with_the_columns_asked() {
        let cols = vec!["user".to_string(), "tags".to_string()];
        let r = rows(
            json!([{"user": "bob", "tags": [], "x": 1}, {"user": "guest", "tags": ["administrator"]}]),
        );
        let mut out = String::new();
        format(false, false, true).table(&mut out, &cols, &r);
        assert_eq!(
            out,
            "[\n{\"user\":\"bob\",\"tags\":[]}\n,{\"user\":\"guest\",\"tags\":[\"administrator\"]}\n]\n"
        );
    }

    #[test]
    fn cells_print_as_rabbitmqctl_prints_them() {
        assert_eq!(
            cell(Some(&json!(["monitoring", "management"]))),
            "[monitoring, management]"
        );
        assert_eq!(cell(Some(&json!({}))), "[]");
        assert_eq!(
            cell(Some(&json!({"x-max-length": 10}))),
            "[{\"x-max-length\",10}]"
        );
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(cell(None), "");
    }

    #[test]
    fn banners_are_dropped_by_quiet_silent_and_json() {
        for (f, want) in [
            (format(false, false, false), "Listing users ...\n"),
            (format(true, false, false), ""),
            (format(false, true, false), ""),
            (format(false, false, true), ""),
        ] {
            let mut out = String::new();
            f.banner(&mut out, "Listing users ...");
            assert_eq!(out, want);
        }
    }

    #[test]
    fn unknown_columns_are_refused_with_rabbitmqctls_text() {
        let err = columns(&["name".into(), "bogus".into()], &["name"], &["name"]).unwrap_err();
        assert_eq!(
            err.report(),
            "Error (argument validation): Info key(s) bogus are not supported"
        );
        assert_eq!(
            columns(&[], &["name", "type"], &[]).unwrap(),
            vec!["name", "type"]
        );
    }
}

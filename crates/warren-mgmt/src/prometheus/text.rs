//! The Prometheus text exposition format (0.0.4): a writer, and a strict parser that the tests
//! and the conformance check use to prove every line of a scrape is well formed.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Kind;

/// A scrape being written: `# TYPE`, `# HELP`, then samples, family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        let _ = writeln!(self.out, "# HELP {name} {help}");
    }

    /// One sample; `labels` is `k="v",...` (already escaped) or empty.
    pub fn sample(&mut self, name: &str, labels: &str, value: u64) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// A parsed scrape: each family's type, HELP and samples (labels, value).
pub type Parsed = BTreeMap<String, (String, String, Vec<(BTreeMap<String, String>, f64)>)>;

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (k, after) = rest.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(k) {
            return Err(format!("bad label name {k:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("dangling escape".into()),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.insert(k.to_string(), value);
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    Ok(labels)
}

/// Parses a scrape strictly: every line is a `# TYPE`, a `# HELP`, a blank line or a sample
/// of a family whose TYPE came before (summaries' `_count`/`_sum` included).
pub fn parse_exposition(text: &str) -> Result<Parsed, String> {
    let mut out = Parsed::new();
    for (no, line) in text.lines().enumerate() {
        let err = |m: &str| format!("line {}: {m}: {line:?}", no + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without a type"))?;
            if !valid_name(name)
                || !["gauge", "counter", "untyped", "summary", "histogram"].contains(&kind)
            {
                return Err(err("bad TYPE"));
            }
            out.entry(name.to_string()).or_default().0 = kind.to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.to_string()).or_default().1 = help.to_string();
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let value: f64 = value.parse().map_err(|_| err("value is not a number"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (
                n,
                parse_labels(l.strip_suffix('}').ok_or_else(|| err("unclosed labels"))?)
                    .map_err(|e| err(&e))?,
            ),
            None => (series, BTreeMap::new()),
        };
        if !valid_name(name) {
            return Err(err("bad metric name"));
        }
        let family = [
            name,
            name.trim_end_matches("_count"),
            name.trim_end_matches("_sum"),
        ]
        .into_iter()
        .find(|n| out.get(*n).is_some_and(|f| !f.0.is_empty()))
        .ok_or_else(|| err("sample before its TYPE"))?
        .to_string();
        if let Some(f) = out.get_mut(&family) {
            f.2.push((labels, value));
        }
    }
    Ok(out)
}

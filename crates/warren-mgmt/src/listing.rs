//! RabbitMQ's list query parameters: `sort` (dotted keys, comma-separated), `sort_reverse`,
//! `columns`, and pagination (`page`, `page_size`, `name`, `use_regex`), applied to a list
//! endpoint's items after they are built.
//!
//! As in RabbitMQ: the name filter applies only with `page`; a paginated reply is an object
//! (`items`, `page`, `page_count`, `page_size`, `item_count`, `filtered_count`,
//! `total_count`); a page past the end is 400 `page_out_of_range`.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::ApiError;

/// RabbitMQ's `?DEFAULT_PAGE_SIZE` and `?MAX_PAGE_SIZE`.
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 500;

/// Query parameters as handlers receive them.
pub type Params = HashMap<String, String>;

fn dotted<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.')
        .filter(|k| !k.is_empty())
        .try_fold(item, |v, k| v.get(k))
}

/// Erlang's term order, roughly: numbers (a missing value counts as 0), then atoms (booleans,
/// null), then strings, then anything else.
fn rank(v: Option<&Value>) -> u8 {
    match v {
        None | Some(Value::Number(_)) => 0,
        Some(Value::Bool(_) | Value::Null) => 1,
        Some(Value::String(_)) => 2,
        Some(_) => 3,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let num = |v: Option<&Value>| v.and_then(Value::as_f64).unwrap_or(0.0);
    match rank(a).cmp(&rank(b)) {
        Ordering::Equal => match (a, b) {
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
            _ if rank(a) == 0 => num(a).partial_cmp(&num(b)).unwrap_or(Ordering::Equal),
            _ => a.map(Value::to_string).cmp(&b.map(Value::to_string)),
        },
        other => other,
    }
}

fn columns(item: &Value, wanted: &[Vec<&str>]) -> Value {
    let Value::Object(m) = item else {
        return item.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        let deeper: Vec<Vec<&str>> = wanted
            .iter()
            .filter(|path| path.first() == Some(&k.as_str()))
            .map(|path| path[1..].to_vec())
            .collect();
        if deeper.is_empty() {
            continue;
        }
        // `a` keeps all of `a`; `a.b` keeps only `b` inside `a`.
        if deeper.iter().any(Vec::is_empty) {
            out.insert(k.clone(), v.clone());
        } else {
            out.insert(k.clone(), columns(v, &deeper));
        }
    }
    Value::Object(out)
}

fn number(params: &Params, key: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(key)
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid {key} {s}")))
        })
        .transpose()
}

fn name_matches(item: &Value, name: &str, regex: Option<&regex::Regex>) -> bool {
    let Some(have) = item.get("name").and_then(Value::as_str) else {
        return false;
    };
    match regex {
        Some(re) => re.is_match(have),
        None => have.to_lowercase().contains(&name.to_lowercase()),
    }
}

/// Sorts, filters, paginates and picks columns of a list reply as `params` ask (anything but
/// an array is returned as it is).
pub fn reply_list(list: Value, params: &Params) -> Result<Value, ApiError> {
    let Value::Array(mut items) = list else {
        return Ok(list);
    };
    if let Some(sort) = params.get("sort")
        && !sort.is_empty()
    {
        let keys: Vec<&str> = sort.split(',').filter(|k| !k.is_empty()).collect();
        items.sort_by(|a, b| {
            keys.iter()
                .map(|k| compare(dotted(a, k), dotted(b, k)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
    }
    if params.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let wanted: Option<Vec<Vec<&str>>> = params.get("columns").map(|c| {
        c.split(',')
            .filter(|c| !c.is_empty())
            .map(|c| c.split('.').filter(|k| !k.is_empty()).collect())
            .collect()
    });
    let pick = |items: Vec<Value>| -> Vec<Value> {
        match &wanted {
            Some(w) => items.iter().map(|i| columns(i, w)).collect(),
            None => items,
        }
    };
    let (page, page_size) = (number(params, "page")?, number(params, "page_size")?);
    let Some(page) = page else {
        return Ok(Value::Array(pick(items)));
    };
    let size = page_size.unwrap_or(DEFAULT_PAGE_SIZE as i64);
    if page < 1 || size < 1 || size > MAX_PAGE_SIZE as i64 {
        return Err(ApiError::Custom {
            error: "invalid_pagination_parameters",
            reason: format!("Invalid pagination parameters: page number {page}, page size {size}"),
        });
    }
    let (page, size) = (page as usize, size as usize);
    let total = items.len();
    let filtered: Vec<Value> = match params.get("name").filter(|n| !n.is_empty()) {
        Some(name) => {
            let regex = if params.get("use_regex").is_some_and(|v| v == "true") {
                Some(
                    regex::RegexBuilder::new(name)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| ApiError::BadRequest(format!("invalid regex: {e}")))?,
                )
            } else {
                None
            };
            items
                .into_iter()
                .filter(|i| name_matches(i, name, regex.as_ref()))
                .collect()
        }
        None => items,
    };
    let offset = (page - 1).saturating_mul(size);
    // Erlang's lists:sublist/3 accepts a start one past the end (an empty page) and no further.
    if offset > filtered.len() {
        return Err(ApiError::Custom {
            error: "page_out_of_range",
            reason: format!(
                "Page out of range, page: {page} page size: {size}, len: {}",
                filtered.len()
            ),
        });
    }
    let filtered_count = filtered.len();
    let page_items: Vec<Value> = filtered.into_iter().skip(offset).take(size).collect();
    Ok(json!({
        "total_count": total,
        "item_count": page_items.len(),
        "filtered_count": filtered_count,
        "page": page,
        "page_size": size,
        "page_count": filtered_count.div_ceil(size),
        "items": pick(page_items),
    }))
}

/// As [`reply_list`] without pagination: what RabbitMQ's endpoints that call its `reply_list`
/// rather than `reply_list_or_paginate` answer (`/api/vhosts/{v}/connections`,
/// `/api/vhosts/{v}/channels`, `/api/consumers`): `page` and the name filter are ignored and
/// the reply stays a plain array.
pub fn reply_list_unpaged(list: Value, params: &Params) -> Result<Value, ApiError> {
    let mut kept = params.clone();
    for key in ["page", "page_size", "name", "use_regex"] {
        kept.remove(key);
    }
    reply_list(list, &kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unpaged_lists_ignore_paging_but_sort() {
        let p = params(&[("page", "1"), ("page_size", "1"), ("sort", "name")]);
        let out = reply_list_unpaged(Value::Array(queues()), &p).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = out
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q["name"].as_str())
            .collect();
        assert_eq!(names, ["Abc", "a", "b"]);
    }

    fn queues() -> Vec<Value> {
        vec![
            json!({"name": "b", "messages": 5, "vhost": "/"}),
            json!({"name": "a", "messages": 10, "vhost": "/"}),
            json!({"name": "Abc", "vhost": "/"}),
        ]
    }

    #[test]
    fn sorts_by_dotted_keys_with_missing_values_as_zero() {
        let out = reply_list(
            Value::Array(queues()),
            &params(&[("sort", "messages"), ("columns", "name")]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, json!([{"name": "Abc"}, {"name": "b"}, {"name": "a"}]));
        let out = reply_list(
            Value::Array(queues()),
            &params(&[
                ("sort", "name"),
                ("sort_reverse", "true"),
                ("columns", "name"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, json!([{"name": "b"}, {"name": "a"}, {"name": "Abc"}]));
    }

    #[test]
    fn paginates_and_filters_by_name_like_rabbitmq() {
        let p = params(&[
            ("page", "1"),
            ("page_size", "2"),
            ("name", "a"),
            ("sort", "name"),
            ("columns", "name"),
        ]);
        let out = reply_list(Value::Array(queues()), &p).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out,
            json!({"total_count": 3, "item_count": 2, "filtered_count": 2, "page": 1,
                   "page_size": 2, "page_count": 1, "items": [{"name": "Abc"}, {"name": "a"}]})
        );
        let regex = params(&[("page", "1"), ("name", "^a$"), ("use_regex", "true")]);
        let out = reply_list(Value::Array(queues()), &regex).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out["filtered_count"], 1);
        // One past the end is an empty page; further is an error.
        let empty = reply_list(
            Value::Array(queues()),
            &params(&[("page", "2"), ("page_size", "3")]),
        );
        assert!(empty.is_ok_and(|v| v["items"] == json!([])));
        let out = reply_list(Value::Array(queues()), &params(&[("page", "9")]));
        assert!(matches!(
            out,
            Err(ApiError::Custom {
                error: "page_out_of_range",
                ..
            })
        ));
        let out = reply_list(
            Value::Array(queues()),
            &params(&[("page", "1"), ("page_size", "501")]),
        );
        assert!(matches!(
            out,
            Err(ApiError::Custom {
                error: "invalid_pagination_parameters",
                ..
            })
        ));
    }
}

//! Listing conventions shared by the APIs: exact-match filters, `sort_key`/`sort_dir`,
//! and `limit`/`marker` pagination with a `next` link.
//!
//! Lists are narrowed here, so every collection of every service filters, sorts and
//! pages the same way: as JSON objects ([`ListQuery::apply`]), or, for a collection
//! served as typed rows, [`ListQuery::apply_typed`], which pages the rows themselves and
//! only turns them into JSON objects when a filter or a sort asks for a field by name.

use super::error::ApiError;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

/// Query parameters that are not filters.
const RESERVED: &[&str] = &["limit", "marker", "sort_key", "sort_dir", "fields", "page_reverse"];

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filters: Vec<(String, String)>,
    pub sort_key: Option<String>,
    pub sort_desc: bool,
    pub limit: Option<usize>,
    pub marker: Option<String>,
}

/// One page of a list and the query string of the next page, if any.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Value>,
    pub next_marker: Option<String>,
}

impl ListQuery {
    /// Reads the query; `filterable` names the fields that may be filtered on (others are
    /// ignored, as OpenStack ignores unknown filters).
    pub fn parse(params: &HashMap<String, String>, filterable: &[&str]) -> Result<Self, ApiError> {
        let mut q = ListQuery::default();
        for (k, v) in params {
            if RESERVED.contains(&k.as_str()) {
                continue;
            }
            if filterable.contains(&k.as_str()) {
                q.filters.push((k.clone(), v.clone()));
            }
        }
        q.sort_key = params.get("sort_key").cloned();
        q.sort_desc = match params.get("sort_dir").map(String::as_str) {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => return Err(ApiError::bad_request(format!("Invalid sort_dir '{other}': use asc or desc."))),
        };
        if let Some(l) = params.get("limit") {
            let n: usize = l
                .parse()
                .map_err(|_| ApiError::bad_request(format!("Invalid limit '{l}': must be a non-negative integer.")))?;
            q.limit = Some(n);
        }
        q.marker = params.get("marker").cloned();
        Ok(q)
    }

    /// Filters, sorts and pages `items` (each an object with an `id`).
    pub fn apply(&self, items: Vec<Value>) -> Result<Page, ApiError> {
        let mut items: Vec<Value> = items.into_iter().filter(|item| self.matches(item)).collect();
        if let Some(key) = &self.sort_key {
            items.sort_by(|a, b| compare(&a[key.as_str()], &b[key.as_str()]).then_with(|| compare(&a["id"], &b["id"])));
            if self.sort_desc {
                items.reverse();
            }
        }
        if let Some(marker) = &self.marker {
            let pos = items
                .iter()
                .position(|i| i["id"].as_str() == Some(marker.as_str()))
                .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?;
            items.drain(..=pos);
        }
        let mut next_marker = None;
        if let Some(limit) = self.limit {
            if items.len() > limit {
                items.truncate(limit);
                next_marker = items.last().and_then(|i| i["id"].as_str()).map(str::to_string);
            }
        }
        Ok(Page { items, next_marker })
    }

    /// [`Self::apply`] for typed items, which keep their order when the query has no
    /// filter or sort; the page is written straight from them ([`Listing`]).
    pub fn apply_typed<T: Serialize>(&self, items: Vec<T>, id_of: fn(&T) -> &str) -> Result<TypedPage<T>, ApiError> {
        if !self.filters.is_empty() || self.sort_key.is_some() {
            let values = items.iter().map(|i| serde_json::to_value(i).unwrap_or(Value::Null)).collect();
            let page = self.apply(values)?;
            return Ok(TypedPage::Values(page));
        }
        let mut items = items;
        if let Some(marker) = &self.marker {
            let pos = items
                .iter()
                .position(|i| id_of(i) == marker)
                .ok_or_else(|| ApiError::bad_request(format!("Marker {marker} could not be found.")))?;
            items.drain(..=pos);
        }
        let mut next_marker = None;
        if let Some(limit) = self.limit {
            if items.len() > limit {
                items.truncate(limit);
                next_marker = items.last().map(|i| id_of(i).to_string());
            }
        }
        Ok(TypedPage::Typed { items, next_marker })
    }

    fn matches(&self, item: &Value) -> bool {
        self.filters.iter().all(|(k, want)| match &item[k.as_str()] {
            Value::String(s) => s == want,
            Value::Bool(b) => parse_bool(want) == Some(*b),
            Value::Number(n) => n.to_string() == *want,
            Value::Null => want.is_empty() || want == "None" || want == "null",
            _ => false,
        })
    }
}

/// A page of typed items: still typed, or turned into JSON objects by a filter or sort.
#[derive(Debug)]
pub enum TypedPage<T> {
    Typed { items: Vec<T>, next_marker: Option<String> },
    Values(Page),
}

impl<T> TypedPage<T> {
    pub fn next_marker(&self) -> Option<&str> {
        match self {
            TypedPage::Typed { next_marker, .. } => next_marker.as_deref(),
            TypedPage::Values(p) => p.next_marker.as_deref(),
        }
    }
}

/// A list response, `{"<key>": [items], "links": {"self": …, "previous": null, "next": …}}`,
/// serialised straight from its page.
pub struct Listing<'a, T> {
    pub key: &'a str,
    pub page: &'a TypedPage<T>,
    pub self_url: &'a str,
    pub next_url: Option<&'a str>,
}

impl<T: Serialize> Serialize for Listing<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Links<'a> {
            #[serde(rename = "self")]
            me: &'a str,
            previous: Option<&'a str>,
            next: Option<&'a str>,
        }
        let mut m = s.serialize_map(Some(2))?;
        match self.page {
            TypedPage::Typed { items, .. } => m.serialize_entry(self.key, items)?,
            TypedPage::Values(p) => m.serialize_entry(self.key, &p.items)?,
        }
        m.serialize_entry("links", &Links { me: self.self_url, previous: None, next: self.next_url })?;
        m.end()
    }
}

/// Query-string booleans as OpenStack accepts them.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(std::cmp::Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The URL of the next page: the request's query with `marker` replaced.
pub fn next_link(base: &str, params: &HashMap<String, String>, marker: &str) -> String {
    let mut pairs: Vec<(String, String)> =
        params.iter().filter(|(k, _)| k.as_str() != "marker").map(|(k, v)| (k.clone(), v.clone())).collect();
    pairs.sort();
    pairs.push(("marker".into(), marker.into()));
    let qs: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v))).collect();
    format!("{base}?{}", qs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(p: &[(&str, &str)]) -> HashMap<String, String> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn items() -> Vec<Value> {
        (0..5).map(|i| json!({"id": format!("id{i}"), "name": format!("n{}", 4 - i), "enabled": i % 2 == 0})).collect()
    }

    #[test]
    fn filters_sort_and_pages() {
        let q = ListQuery::parse(&params(&[("enabled", "true"), ("sort_key", "name")]), &["enabled"]).unwrap();
        let page = q.apply(items()).unwrap();
        let names: Vec<_> = page.items.iter().map(|i| i["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["n0", "n2", "n4"]);

        let q = ListQuery::parse(&params(&[("limit", "2")]), &[]).unwrap();
        let page = q.apply(items()).unwrap();
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.next_marker.as_deref(), Some("id1"));
        let q = ListQuery::parse(&params(&[("limit", "2"), ("marker", "id3")]), &[]).unwrap();
        let page = q.apply(items()).unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.next_marker.is_none());
    }

    #[test]
    fn typed_items_page_alike() {
        #[derive(Serialize, Debug, PartialEq, Clone)]
        struct Item {
            id: String,
            name: String,
            enabled: bool,
        }
        let typed: Vec<Item> =
            (0..5).map(|i| Item { id: format!("id{i}"), name: format!("n{}", 4 - i), enabled: i % 2 == 0 }).collect();
        let id_of: fn(&Item) -> &str = |i| &i.id;
        for query in [
            vec![("limit", "2")],
            vec![("limit", "2"), ("marker", "id1")],
            vec![("enabled", "true"), ("sort_key", "name")],
            vec![],
        ] {
            let q = ListQuery::parse(&params(&query), &["enabled"]).unwrap();
            let page = q.apply_typed(typed.clone(), id_of).unwrap();
            let listing = Listing { key: "items", page: &page, self_url: "u", next_url: page.next_marker() };
            let got = serde_json::to_value(&listing).unwrap();
            let want = q.apply(typed.iter().map(|i| serde_json::to_value(i).unwrap()).collect()).unwrap();
            assert_eq!(got["items"], Value::Array(want.items), "{query:?}");
            assert_eq!(page.next_marker(), want.next_marker.as_deref(), "{query:?}");
            assert_eq!(got["links"]["self"], "u");
        }
    }

    #[test]
    fn bad_paging_input_is_a_400() {
        assert!(ListQuery::parse(&params(&[("limit", "x")]), &[]).is_err());
        assert!(ListQuery::parse(&params(&[("sort_dir", "up")]), &[]).is_err());
        let q = ListQuery::parse(&params(&[("marker", "nope")]), &[]).unwrap();
        assert_eq!(q.apply(items()).unwrap_err().status, 400);
    }

    #[test]
    fn next_link_replaces_marker() {
        let l = next_link("http://h/v3/projects", &params(&[("limit", "2"), ("marker", "a")]), "b c");
        assert_eq!(l, "http://h/v3/projects?limit=2&marker=b%20c");
    }
}

//! Neutron's list queries: exact-match filters (a key given twice matches either value),
//! `fields=`, tag filters, `sort_key`/`sort_dir` and `limit`/`marker` pagination.

use crate::app::bad;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use stratus_common::http::pagination::parse_bool;
use stratus_common::http::ApiResult;

#[derive(Debug, Default)]
pub struct ListQuery {
    pub pairs: Vec<(String, String)>,
    pub filters: Vec<(String, Vec<String>)>,
    pub fields: Vec<String>,
    pub sort: Vec<(String, bool)>,
    pub limit: Option<usize>,
    pub marker: Option<String>,
    pub page_reverse: bool,
    tags_all: Vec<String>,
    tags_any: Vec<String>,
    not_tags_all: Vec<String>,
    not_tags_any: Vec<String>,
}

fn decode(s: &str) -> String {
    urlencoding::decode(&s.replace('+', " ")).map(|c| c.into_owned()).unwrap_or_else(|_| s.to_string())
}

fn split_tags(v: &str) -> Vec<String> {
    v.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect()
}

impl ListQuery {
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut q = ListQuery::default();
        let mut keys = Vec::new();
        let mut dirs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (decode(k), decode(v));
            q.pairs.push((k.clone(), v.clone()));
            match k.as_str() {
                "fields" => q.fields.extend(v.split(',').filter(|f| !f.is_empty()).map(str::to_string)),
                "sort_key" => keys.push(v),
                "sort_dir" => dirs.push(match v.as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(bad(format!("Invalid sort_dir '{v}': use asc or desc."))),
                }),
                "limit" => {
                    let n: usize =
                        v.parse().map_err(|_| bad(format!("Invalid limit '{v}': must be a non-negative integer.")))?;
                    q.limit = (n > 0).then_some(n);
                }
                "marker" => q.marker = Some(v),
                "page_reverse" => q.page_reverse = parse_bool(&v).unwrap_or(false),
                "tags" => q.tags_all.extend(split_tags(&v)),
                "tags-any" => q.tags_any.extend(split_tags(&v)),
                "not-tags" => q.not_tags_all.extend(split_tags(&v)),
                "not-tags-any" => q.not_tags_any.extend(split_tags(&v)),
                "all_projects" | "all_tenants" => {}
                _ => match q.filters.iter_mut().find(|(fk, _)| *fk == k) {
                    Some((_, vals)) => vals.push(v),
                    None => q.filters.push((k, vec![v])),
                },
            }
        }
        if !dirs.is_empty() && dirs.len() != keys.len() {
            return Err(bad("The number of sort_keys and sort_dirs must be the same."));
        }
        q.sort = keys.into_iter().enumerate().map(|(i, k)| (k, dirs.get(i).copied().unwrap_or(false))).collect();
        Ok(q)
    }

    /// The single value of a filter, if given exactly once.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.filters.iter().find(|(k, _)| k == key).and_then(|(_, v)| (v.len() == 1).then(|| v[0].as_str()))
    }

    /// Whether a rendered resource passes the filters.
    pub fn matches(&self, item: &Value) -> bool {
        let tags: Vec<&str> =
            item["tags"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let has = |t: &String| tags.contains(&t.as_str());
        if !self.tags_all.iter().all(has)
            || (!self.tags_any.is_empty() && !self.tags_any.iter().any(has))
            || (!self.not_tags_all.is_empty() && self.not_tags_all.iter().all(has))
            || self.not_tags_any.iter().any(has)
        {
            return false;
        }
        self.filters.iter().all(|(k, wants)| match item.get(k.as_str()) {
            // Not an attribute of this resource: ignored, as Neutron ignores unknown filters.
            None => true,
            Some(v) => wants.iter().any(|w| value_matches(k, v, w)),
        })
    }

    /// Filters, sorts and pages; returns the page and whether more follow.
    pub fn apply(&self, items: Vec<Value>) -> ApiResult<(Vec<Value>, bool)> {
        // A sort key must be an attribute of the resource (Neutron answers 400 too).
        if let Some(first) = items.first() {
            if let Some((k, _)) = self.sort.iter().find(|(k, _)| first.get(k.as_str()).is_none()) {
                return Err(bad(format!("{k} is invalid attribute for sort_key.")));
            }
        }
        let mut items = items;
        if !self.sort.is_empty() {
            items.sort_by(|a, b| {
                for (k, desc) in &self.sort {
                    let o = compare(&a[k.as_str()], &b[k.as_str()]);
                    let o = if *desc { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                compare(&a["id"], &b["id"])
            });
        }
        if self.page_reverse {
            items.reverse();
        }
        if let Some(marker) = &self.marker {
            // The marker is looked for among everything the caller may see, before the
            // filters; one that is not there is an error, as in Neutron.
            let pos = items
                .iter()
                .position(|i| i["id"].as_str() == Some(marker.as_str()))
                .ok_or_else(|| bad(format!("Marker {marker} could not be found.")))?;
            items.drain(..=pos);
        }
        let mut items: Vec<Value> = items.into_iter().filter(|i| self.matches(i)).collect();
        let mut more = false;
        if let Some(limit) = self.limit {
            if items.len() > limit {
                items.truncate(limit);
                more = true;
            }
        }
        if self.page_reverse {
            items.reverse();
        }
        Ok((items, more))
    }

    /// Keeps only the asked `fields` of a resource (all without `fields`).
    pub fn select(&self, item: Value) -> Value {
        if self.fields.is_empty() {
            return item;
        }
        match item {
            Value::Object(m) => {
                Value::Object(m.into_iter().filter(|(k, _)| self.fields.iter().any(|f| f == k)).collect::<Map<_, _>>())
            }
            other => other,
        }
    }

    /// The next page's link: the same query with the last item as marker.
    pub fn next_link(&self, base: &str, last_id: &str) -> String {
        let mut parts: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "marker" && k != "page_reverse")
            .map(|(k, v)| format!("{}={}", urlencoding::encode(k), urlencoding::encode(v)))
            .collect();
        parts.push(format!("marker={}", urlencoding::encode(last_id)));
        format!("{base}?{}", parts.join("&"))
    }
}

fn value_matches(key: &str, v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => parse_bool(want) == Some(*b),
        Value::Number(n) => n.to_string() == want,
        Value::Null => want.is_empty() || want == "None" || want == "null",
        // `fixed_ips=ip_address=10.0.0.5` or `fixed_ips=subnet_id=...` on ports.
        Value::Array(a) if key == "fixed_ips" => {
            let (k, w) = want.split_once('=').unwrap_or(("ip_address", want));
            a.iter().any(|e| e[k].as_str() == Some(w))
        }
        Value::Array(a) => a.iter().any(|e| e.as_str() == Some(want)),
        _ => false,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_fields_tags_and_pages() {
        let q =
            ListQuery::parse(Some("name=a&name=b&fields=id&fields=name&tags=x&limit=1&sort_key=name&sort_dir=desc"))
                .unwrap();
        let items = vec![
            json!({"id": "1", "name": "a", "tags": ["x"]}),
            json!({"id": "2", "name": "b", "tags": ["x", "y"]}),
            json!({"id": "3", "name": "c", "tags": ["x"]}),
            json!({"id": "4", "name": "a", "tags": []}),
        ];
        let (page, more) = q.apply(items.clone()).unwrap();
        assert!(more);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0]["id"], "2");
        assert_eq!(q.select(page[0].clone()), json!({"id": "2", "name": "b"}));
        let next = ListQuery::parse(Some(q.next_link("", "2").trim_start_matches('?'))).unwrap();
        let (page, more) = next.apply(items).unwrap();
        assert_eq!((page.len(), more, page[0]["id"].as_str()), (1, false, Some("1")));
        let fixed = ListQuery::parse(Some("fixed_ips=ip_address%3D10.0.0.5")).unwrap();
        assert!(fixed.matches(&json!({"fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.5"}]})));
        assert!(!fixed.matches(&json!({"fixed_ips": [{"subnet_id": "s", "ip_address": "10.0.0.6"}]})));
        assert!(ListQuery::parse(Some("sort_dir=up")).is_err());
    }
}

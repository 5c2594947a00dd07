//! Printing: an aligned table for people, JSON or bare values for scripts. `-c` picks
//! columns by header (any case); an unknown one is a usage error naming the known ones.

use crate::Format;
use serde_json::{Map, Value};
use stratus_client::resources::Kind;

/// Writes `text` to stdout. A reader that went away (`stratus server list | head`)
/// ends the command quietly, as other Unix tools do; another write error is exit 1.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("stratus: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// A field's value as a cell: text as is, lists joined, a server's addresses as
/// `net=ip, ip; net2=ip`, other objects as compact JSON, null as nothing.
pub fn cell(v: &Value, field: &str) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(|i| cell(i, "")).collect::<Vec<_>>().join(", "),
        Value::Object(m) if field == "addresses" => m
            .iter()
            .map(|(net, ips)| {
                let ips: Vec<String> = ips
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|ip| ip["addr"].as_str().map(str::to_string))
                    .collect();
                format!("{net}={}", ips.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn get<'a>(row: &'a Value, path: &str) -> &'a Value {
    // A key with dots of its own (`OS-EXT-SRV-ATTR:host` has none; `placement.rack` may)
    // is tried whole first.
    if let Some(v) = row.get(path) {
        return v;
    }
    path.split('.').fold(row, |v, k| v.get(k).unwrap_or(&Value::Null))
}

/// The indexes of the wanted columns among `headers`.
fn pick(headers: &[String], wanted: &[String]) -> Result<Vec<usize>, String> {
    if wanted.is_empty() {
        return Ok((0..headers.len()).collect());
    }
    wanted
        .iter()
        .map(|w| {
            headers
                .iter()
                .position(|h| h.eq_ignore_ascii_case(w))
                .ok_or_else(|| format!("no column {w:?}: the columns are {}", headers.join(", ")))
        })
        .collect()
}

/// A list of `kind`.
pub fn table(kind: &Kind, rows: &[Value], format: Format, wanted: &[String]) -> Result<(), String> {
    columns_table(kind.columns, rows, format, wanted)
}

/// A list of rows, shown as `columns` (header, field) say.
pub fn columns_table(
    columns: &[(&str, &str)],
    rows: &[Value],
    format: Format,
    wanted: &[String],
) -> Result<(), String> {
    let headers: Vec<String> = columns.iter().map(|(h, _)| h.to_string()).collect();
    let idx = pick(&headers, wanted)?;
    let cells: Vec<Vec<String>> =
        rows.iter().map(|r| idx.iter().map(|&i| cell(get(r, columns[i].1), columns[i].1)).collect()).collect();
    let heads: Vec<String> = idx.iter().map(|&i| headers[i].clone()).collect();
    match format {
        Format::Json | Format::Yaml => {
            let out: Vec<Value> = rows
                .iter()
                .map(|r| {
                    let mut m = Map::new();
                    for &i in &idx {
                        m.insert(headers[i].clone(), get(r, columns[i].1).clone());
                    }
                    Value::Object(m)
                })
                .collect();
            document(format, &Value::Array(out));
        }
        Format::Value => {
            for row in &cells {
                emit(&format!("{}\n", row.join(" ")));
            }
        }
        Format::Table => emit(&aligned(&heads, &cells)),
    }
    Ok(())
}

/// One object: every field, or the `-c` ones.
pub fn record(obj: &Value, format: Format, wanted: &[String]) -> Result<(), String> {
    let empty = Map::new();
    let fields = obj.as_object().unwrap_or(&empty);
    let mut keys: Vec<String> = fields.keys().cloned().collect();
    keys.sort();
    let idx = pick(&keys, wanted)?;
    match format {
        Format::Json | Format::Yaml => {
            let m: Map<String, Value> = idx.iter().map(|&i| (keys[i].clone(), fields[&keys[i]].clone())).collect();
            document(format, &Value::Object(m));
        }
        Format::Value => {
            for &i in &idx {
                emit(&format!("{}\n", cell(&fields[&keys[i]], &keys[i])));
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> =
                idx.iter().map(|&i| vec![keys[i].clone(), cell(&fields[&keys[i]], &keys[i])]).collect();
            emit(&aligned(&["Field".into(), "Value".into()], &rows));
        }
    }
    Ok(())
}

/// Columns padded to their widest cell (in characters), a rule under the headers.
pub fn aligned(headers: &[String], rows: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
        }
    }
    let line = |cells: &[String]| {
        let mut s = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - width(c))))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(headers);
    out += &line(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>());
    for r in rows {
        out += &line(r);
    }
    out
}

/// A whole document as JSON (pretty) or, with `-o yaml`, YAML.
pub fn document(format: Format, v: &Value) {
    if format == Format::Yaml {
        emit(&serde_yaml::to_string(v).unwrap_or_default());
    } else {
        emit(&format!("{}\n", serde_json::to_string_pretty(v).unwrap_or_default()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_on_the_widest_cell() {
        let t =
            aligned(&["ID".into(), "Name".into()], &[vec!["1".into(), "web".into()], vec!["22".into(), "é".into()]]);
        assert_eq!(t, "ID  Name\n--  ----\n1   web\n22  é\n");
    }

    #[test]
    fn cells_read_as_people_read_them() {
        let addresses = json!({"net1": [{"addr": "10.0.0.5"}, {"addr": "203.0.113.9"}]});
        assert_eq!(cell(&addresses, "addresses"), "net1=10.0.0.5, 203.0.113.9");
        assert_eq!(cell(&json!(["a", "b"]), "subnets"), "a, b");
        assert_eq!(cell(&Value::Null, "x"), "");
        assert_eq!(cell(&json!(true), "x"), "true");
        assert_eq!(get(&json!({"flavor": {"original_name": "m1"}}), "flavor.original_name"), "m1");
    }

    #[test]
    fn unknown_columns_name_the_known_ones() {
        let err = pick(&["ID".into(), "Name".into()], &["nope".into()]).unwrap_err();
        assert!(err.contains("ID, Name"), "{err}");
        assert_eq!(pick(&["ID".into(), "Name".into()], &["name".into()]).unwrap(), vec![1]);
    }
}

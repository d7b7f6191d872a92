//! Compatibility of an event's current JSON Schema with the committed one of the same version:
//! which changes break which readers, and which of them a [`Compat`] policy refuses.
//!
//! The schemas compared are what schemars emits (draft 2020-12): objects with `properties` and
//! `required`, `$ref`s into `$defs`, `Option<T>` as a nullable type or `anyOf [T, null]`, enums as
//! `enum`/`const` or `oneOf` alternatives (externally, internally or adjacently tagged),
//! `#[serde(flatten)]` merged into the parent or as `allOf`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::registry::Compat;

/// Which readers a change breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breaks {
    /// New code reading events written with the committed schema (and, in herald, other services
    /// that read a field which disappears).
    Backward,
    /// Code built on the committed schema reading events written with the new one.
    Forward,
    /// Both.
    Both,
}

/// One change between the committed schema and the current one that breaks some reader. Field
/// paths are wire names joined by `.`, `[]` for array items and `::Variant` inside enum variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A field that was required is gone.
    FieldRemoved {
        /// The field's path.
        field: String,
    },
    /// A required field has a new wire name (a renamed field, `serde(rename)` or `rename_all`).
    FieldRenamed {
        /// The committed wire name.
        from: String,
        /// The current wire name.
        to: String,
    },
    /// A field's type changed.
    TypeChanged {
        /// The field's path (empty: the event itself).
        field: String,
        /// The committed type.
        from: String,
        /// The current type.
        to: String,
    },
    /// A new field is required and has no default.
    RequiredFieldAdded {
        /// The field's path.
        field: String,
    },
    /// An optional (or nullable) field became required.
    FieldMadeRequired {
        /// The field's path.
        field: String,
    },
    /// A required field became optional (or nullable).
    FieldMadeOptional {
        /// The field's path.
        field: String,
    },
    /// An enum variant is gone.
    VariantRemoved {
        /// The enum's path (empty: the event itself).
        field: String,
        /// The variant's wire name.
        variant: String,
    },
    /// An enum has a new variant.
    VariantAdded {
        /// The enum's path (empty: the event itself).
        field: String,
        /// The variant's wire name.
        variant: String,
    },
}

impl Change {
    /// Which readers the change breaks.
    pub fn breaks(&self) -> Breaks {
        match self {
            Self::FieldRemoved { .. } | Self::FieldRenamed { .. } | Self::TypeChanged { .. } => {
                Breaks::Both
            }
            Self::RequiredFieldAdded { .. }
            | Self::FieldMadeRequired { .. }
            | Self::VariantRemoved { .. } => Breaks::Backward,
            Self::FieldMadeOptional { .. } | Self::VariantAdded { .. } => Breaks::Forward,
        }
    }

    /// Whether `policy` refuses the change at the same version.
    pub fn refused_by(&self, policy: Compat) -> bool {
        match (policy, self.breaks()) {
            (Compat::None, _) => false,
            (Compat::Full, _) | (_, Breaks::Both) => true,
            (Compat::Backward, breaks) => breaks == Breaks::Backward,
            (Compat::Forward, breaks) => breaks == Breaks::Forward,
        }
    }

    /// What changed and what to do, for an event whose next version is `next_version`.
    pub fn describe(&self, next_version: u32) -> String {
        let bump = format!("bump `version` to {next_version}");
        match self {
            Self::FieldRemoved { field } => {
                format!("field `{field}` removed — {bump} or keep the field")
            }
            Self::FieldRenamed { from, to } => format!(
                "field `{from}` renamed to `{to}` on the wire — {bump} or keep the wire name with \
                 `#[serde(rename = \"{}\")]`",
                last_segment(from)
            ),
            Self::TypeChanged { field, from, to } => format!(
                "{} changed type from {from} to {to} — {bump} or keep the type",
                subject(field)
            ),
            Self::RequiredFieldAdded { field } => format!(
                "new field `{field}` is required but events written before lack it — make it \
                 `Option<_>`, give it `#[serde(default)]`, or {bump}"
            ),
            Self::FieldMadeRequired { field } => format!(
                "field `{field}` became required but events written before may lack it or hold null \
                 — keep it optional or {bump}"
            ),
            Self::FieldMadeOptional { field } => format!(
                "field `{field}` became optional but consumers built on the committed schema need a \
                 value — keep it required or {bump}"
            ),
            Self::VariantRemoved { field, variant } => format!(
                "enum variant `{variant}` {} removed but events written before may carry it — keep \
                 the variant or {bump}",
                of(field)
            ),
            Self::VariantAdded { field, variant } => format!(
                "enum variant `{variant}` added {} but consumers built on the committed schema \
                 cannot read it — {bump}, or allow new variants with `compat = \"backward\"`",
                to_field(field)
            ),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(2))
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn subject(field: &str) -> String {
    match field {
        "" => "the event".to_owned(),
        field => format!("field `{field}`"),
    }
}

fn of(field: &str) -> String {
    match field {
        "" => "of the event".to_owned(),
        field => format!("of `{field}`"),
    }
}

fn to_field(field: &str) -> String {
    match field {
        "" => "to the event".to_owned(),
        field => format!("to `{field}`"),
    }
}

/// Every change from `committed` to `current` that breaks some reader, in schema order.
pub fn changes(committed: &Value, current: &Value) -> Vec<Change> {
    let mut walker = Walker {
        old_root: committed,
        new_root: current,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    walker.walk(committed, current, "");
    walker.out
}

/// The changes from `committed` to `current` that `policy` refuses at the same version.
pub fn breaking(committed: &Value, current: &Value, policy: Compat) -> Vec<Change> {
    changes(committed, current)
        .into_iter()
        .filter(|change| change.refused_by(policy))
        .collect()
}

struct Walker<'a> {
    old_root: &'a Value,
    new_root: &'a Value,
    /// `$ref` pairs already compared: recursive types end there.
    seen: HashSet<(String, String)>,
    out: Vec<Change>,
}

/// What a (resolved, non-null) schema is, for comparison.
enum Shape {
    Object(Map<String, Value>, BTreeSet<String>),
    Map(Value),
    Array(Value),
    Variants(BTreeMap<String, Option<Value>>),
    Scalar(String),
}

impl Walker<'_> {
    fn walk(&mut self, old: &Value, new: &Value, path: &str) {
        if let (Some(a), Some(b)) = (ref_of(old), ref_of(new)) {
            if !self.seen.insert((a.to_owned(), b.to_owned())) {
                return;
            }
        }
        let old = strip_null(self.old_root, resolve(self.old_root, old)).0;
        let new = strip_null(self.new_root, resolve(self.new_root, new)).0;
        match (shape(self.old_root, &old), shape(self.new_root, &new)) {
            (Shape::Object(op, or), Shape::Object(np, nr)) => {
                self.objects(&op, &or, &np, &nr, path)
            }
            (Shape::Map(a), Shape::Map(b)) => self.walk(&a, &b, &format!("{path}{{}}")),
            (Shape::Array(a), Shape::Array(b)) => self.walk(&a, &b, &format!("{path}[]")),
            (Shape::Variants(a), Shape::Variants(b)) => self.variants(&a, &b, path),
            (Shape::Scalar(a), Shape::Scalar(b)) if a == b => {}
            (a, b) => {
                let (from, to) = (describe(&a), describe(&b));
                if from != to {
                    self.out.push(Change::TypeChanged {
                        field: path.to_owned(),
                        from,
                        to,
                    });
                }
            }
        }
    }

    fn objects(
        &mut self,
        old: &Map<String, Value>,
        old_required: &BTreeSet<String>,
        new: &Map<String, Value>,
        new_required: &BTreeSet<String>,
        path: &str,
    ) {
        let join = |name: &str| match path {
            "" => name.to_owned(),
            path => format!("{path}.{name}"),
        };
        let old_optional =
            |name: &str| !old_required.contains(name) || is_nullable(self.old_root, &old[name]);
        let new_optional =
            |name: &str| !new_required.contains(name) || is_nullable(self.new_root, &new[name]);
        let mut added: Vec<&String> = new.keys().filter(|k| !old.contains_key(*k)).collect();
        for name in old.keys().filter(|k| !new.contains_key(*k)) {
            if old_optional(name) {
                continue; // readers of either schema do without it
            }
            let was = resolve(self.old_root, &old[name]);
            let renamed = added
                .iter()
                .position(|candidate| resolve(self.new_root, &new[*candidate]) == was);
            match renamed {
                Some(index) => {
                    let to = added.remove(index);
                    self.out.push(Change::FieldRenamed {
                        from: join(name),
                        to: join(to),
                    });
                }
                None => self.out.push(Change::FieldRemoved { field: join(name) }),
            }
        }
        for name in added {
            if !new_optional(name) {
                self.out
                    .push(Change::RequiredFieldAdded { field: join(name) });
            }
        }
        for (name, old_schema) in old {
            let Some(new_schema) = new.get(name) else {
                continue;
            };
            match (old_optional(name), new_optional(name)) {
                (true, false) => self
                    .out
                    .push(Change::FieldMadeRequired { field: join(name) }),
                (false, true) => self
                    .out
                    .push(Change::FieldMadeOptional { field: join(name) }),
                _ => {}
            }
            self.walk(old_schema, new_schema, &join(name));
        }
    }

    fn variants(
        &mut self,
        old: &BTreeMap<String, Option<Value>>,
        new: &BTreeMap<String, Option<Value>>,
        path: &str,
    ) {
        for name in old.keys().filter(|k| !new.contains_key(*k)) {
            self.out.push(Change::VariantRemoved {
                field: path.to_owned(),
                variant: name.clone(),
            });
        }
        for name in new.keys().filter(|k| !old.contains_key(*k)) {
            self.out.push(Change::VariantAdded {
                field: path.to_owned(),
                variant: name.clone(),
            });
        }
        for (name, old_schema) in old {
            if let (Some(Some(a)), Some(Some(b))) = (Some(old_schema), new.get(name)) {
                let inner = match path {
                    "" => name.clone(),
                    path => format!("{path}::{name}"),
                };
                self.walk(a, b, &inner);
            }
        }
    }
}

fn ref_of(schema: &Value) -> Option<&str> {
    schema.get("$ref").and_then(Value::as_str)
}

/// Follows `$ref`s into `$defs` (or `definitions`).
fn resolve<'v>(root: &'v Value, mut schema: &'v Value) -> &'v Value {
    for _ in 0..32 {
        let Some(reference) = ref_of(schema) else {
            break;
        };
        let target = reference
            .strip_prefix("#/$defs/")
            .map(|name| &root["$defs"][name])
            .or_else(|| {
                reference
                    .strip_prefix("#/definitions/")
                    .map(|name| &root["definitions"][name])
            });
        match target {
            Some(target) if !target.is_null() => schema = target,
            _ => break,
        }
    }
    schema
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("const").is_some_and(Value::is_null)
}

fn is_nullable(root: &Value, schema: &Value) -> bool {
    strip_null(root, resolve(root, schema)).1
}

/// The schema without `null`, and whether it allowed `null`.
fn strip_null(root: &Value, schema: &Value) -> (Value, bool) {
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        if types.iter().any(|t| t == "null") {
            let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            let mut stripped = schema.clone();
            stripped["type"] = match rest.as_slice() {
                [one] => one.clone(),
                _ => Value::Array(rest),
            };
            if let Some(values) = stripped.get_mut("enum").and_then(Value::as_array_mut) {
                values.retain(|v| !v.is_null());
            }
            return (stripped, true);
        }
    }
    for keyword in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema.get(keyword).and_then(Value::as_array) {
            if alternatives.len() == 2 {
                if let Some(null) = alternatives.iter().position(is_null_schema) {
                    let other = resolve(root, &alternatives[1 - null]);
                    return (strip_null(root, other).0, true);
                }
            }
        }
    }
    (schema.clone(), false)
}

fn shape(root: &Value, schema: &Value) -> Shape {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if schema.get("enum").is_some() || schema.get("const").is_some() {
        return Shape::Variants(variants(root, schema));
    }
    if schema.get("oneOf").is_some() || schema.get("anyOf").is_some() {
        return Shape::Variants(variants(root, schema));
    }
    if schema.get("properties").is_some() || schema.get("allOf").is_some() {
        let (properties, required) = object(root, schema);
        return Shape::Object(properties, required);
    }
    if types == ["object"] {
        return match schema.get("additionalProperties") {
            Some(values) if values.is_object() => Shape::Map(values.clone()),
            _ => Shape::Object(Map::new(), BTreeSet::new()),
        };
    }
    if types == ["array"] {
        if let Some(items) = schema.get("items") {
            return Shape::Array(items.clone());
        }
    }
    let mut name = types.join(" or ");
    if name.is_empty() {
        name = "any".to_owned();
    }
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        name = format!("{name} ({format})");
    }
    if let Some(prefix) = schema.get("prefixItems").and_then(Value::as_array) {
        name = format!("{name} of {} items", prefix.len());
    }
    Shape::Scalar(name)
}

/// The properties and required names of an object schema, `allOf` parts (flatten) merged in.
fn object(root: &Value, schema: &Value) -> (Map<String, Value>, BTreeSet<String>) {
    let mut properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut required: BTreeSet<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (more, more_required) = object(root, resolve(root, part));
        properties.extend(more);
        required.extend(more_required);
    }
    (properties, required)
}

/// The variants of an enum schema by wire name, with the schema of their content when they have one.
fn variants(root: &Value, schema: &Value) -> BTreeMap<String, Option<Value>> {
    let mut out = BTreeMap::new();
    let name = |value: &Value| match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        out.extend(values.iter().map(|v| (name(v), None)));
    }
    if let Some(value) = schema.get("const") {
        out.insert(name(value), None);
    }
    let alternatives = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array);
    for (index, alternative) in alternatives.into_iter().flatten().enumerate() {
        let alternative = resolve(root, alternative);
        if alternative.get("enum").is_some() || alternative.get("const").is_some() {
            out.extend(variants(root, alternative));
            continue;
        }
        let (properties, required) = object(root, alternative);
        // Internally or adjacently tagged: a property whose value is a constant.
        if let Some(tag) = properties
            .values()
            .find_map(|p| resolve(root, p).get("const").map(name))
        {
            out.insert(tag, Some(alternative.clone()));
            continue;
        }
        // Externally tagged: `{ "Variant": content }`.
        if properties.len() == 1 && required.len() == 1 {
            let (tag, content) = properties.into_iter().next().expect("one property");
            out.insert(tag, Some(content));
            continue;
        }
        let label = alternative
            .get("title")
            .and_then(Value::as_str)
            .map_or_else(|| format!("alternative {}", index + 1), str::to_owned);
        out.insert(label, Some(alternative.clone()));
    }
    out
}

fn describe(shape: &Shape) -> String {
    match shape {
        Shape::Object(..) => "object".to_owned(),
        Shape::Map(_) => "map".to_owned(),
        Shape::Array(_) => "array".to_owned(),
        Shape::Variants(_) => "enum".to_owned(),
        Shape::Scalar(name) => name.clone(),
    }
}

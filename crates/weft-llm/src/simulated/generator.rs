//! The rule that turns a JSON Schema into one value satisfying it: the simulated model's answer
//! when a request asks for structured output.
//!
//! The rule, for each schema, takes the first of:
//!
//! 1. `false` → `null` (nothing validates); `true`, or a schema that is not an object → like `{}`.
//! 2. A local `$ref` (`#`, `#/$defs/X`, `#/definitions/X`, any JSON pointer into the root) → the
//!    target, with the `$ref`'s constraining siblings laid over it. Refs that do not resolve locally
//!    are ignored.
//! 3. `const` → that value; `enum` → its first value.
//! 4. `allOf` → the merge of every branch with the rest of the schema; `anyOf` / `oneOf` → the
//!    merge of the first branch with the rest of the schema. Merging unites `properties` and
//!    `required`, intersects `type`, keeps the tighter of two bounds (`minimum`, `maxLength`...),
//!    and otherwise lets the later keyword win.
//! 5. The type: `type`, its first non-null entry when it is a list, else inferred from the
//!    keywords present (`properties` → object, `items` → array, `minLength` → string,
//!    `minimum` → number...). No type and no keyword (`{}`) → a string, so the value reads well in
//!    prompts.
//!    - `null` → `null`; `boolean` → `false`;
//!    - `integer` → `minimum`, or `exclusiveMinimum` + 1, or `0`, lowered to `maximum` (or
//!      `exclusiveMaximum` - 1) when that is lower, then moved to a multiple of `multipleOf`;
//!      `number` likewise, as a float (`0.0`);
//!    - `string` → a fixed example for a known `format` (`date-time` → `2026-01-01T00:00:00Z`,
//!      `email` → `user@example.com`...), else the property's name (`text` at the root or when
//!      unnamed), repeated up to `minLength` and cut at `maxLength`; `pattern` is not honoured;
//!    - `array` → `array_len` items, at least `minItems` and at most `maxItems`, from
//!      `prefixItems` (or a draft-7 `items` list) then `items`, each named after the array's
//!      property; with `uniqueItems`, duplicates are dropped;
//!    - `object` → every property of `properties`, in order, then required names that are not
//!      listed (from `additionalProperties` when it is a schema), then entries named `key1`,
//!      `key2`... up to `minProperties`. A dictionary (`additionalProperties` only) → `{}`.
//!
//! Recursion always ends: past [`REF_DEPTH`] nested `$ref`s the generator only produces what is
//! required (objects with their required properties, arrays with `minItems` items, `null` when
//! the type allows it), and past twice that depth, or [`MAX_DEPTH`] nested schemas, it produces the
//! smallest value of the type (`{}`, `[]`, `null`...). Huge `minLength` / `minItems` are capped
//! ([`MAX_LEN`], [`MAX_ITEMS`]) so a hostile schema cannot exhaust memory; the value then does not
//! validate, but nothing panics.

use serde_json::{Map, Number, Value as Json};

/// Nested `$ref`s followed in full before the generator keeps to what is required.
pub const REF_DEPTH: usize = 8;

/// Nested schemas (of any kind) past which the generator produces the smallest value.
pub const MAX_DEPTH: usize = 128;

/// The longest string produced for `minLength`.
pub const MAX_LEN: usize = 65_536;

/// The most items produced for `minItems` or entries for `minProperties`.
pub const MAX_ITEMS: usize = 1_024;

/// Keywords that only describe, so a `$ref` or `anyOf` with only these beside it needs no merge.
const ANNOTATIONS: &[&str] =
    &["$schema", "$id", "$anchor", "$comment", "$defs", "definitions", "title", "description", "default", "examples", "deprecated"];

/// A value satisfying `schema`, with arrays of `array_len` items where the schema allows; see the
/// module documentation for the rule. Never panics.
pub fn generate(schema: &Json, array_len: usize) -> Json {
    Generator { root: schema, array_len }.value(schema, None, Depth::default())
}

struct Generator<'a> {
    root: &'a Json,
    array_len: usize,
}

/// How deep the generator is: in schemas, and in followed `$ref`s.
#[derive(Clone, Copy, Default)]
struct Depth {
    nested: usize,
    refs: usize,
}

impl Depth {
    fn deeper(self) -> Depth {
        Depth { nested: self.nested + 1, ..self }
    }

    fn through_ref(self) -> Depth {
        Depth { nested: self.nested + 1, refs: self.refs + 1 }
    }

    /// Past this, only what is required is produced.
    fn minimal(self) -> bool {
        self.refs >= REF_DEPTH
    }

    /// Past this, the smallest value of the type is produced.
    fn exhausted(self) -> bool {
        self.refs >= 2 * REF_DEPTH || self.nested >= MAX_DEPTH
    }
}

impl Generator<'_> {
    fn value(&self, schema: &Json, name: Option<&str>, depth: Depth) -> Json {
        let map = match schema {
            Json::Object(map) => map,
            Json::Bool(false) => return Json::Null,
            _ => return Json::String(name_or_text(name).to_owned()),
        };
        if depth.exhausted() {
            let target = map.get("$ref").and_then(Json::as_str).and_then(|reference| self.resolve(reference));
            return match target {
                Some(Json::Object(target)) => smallest(target),
                _ => smallest(map),
            };
        }

        if let Some(reference) = map.get("$ref").and_then(Json::as_str)
            && let Some(target) = self.resolve(reference)
        {
            return self.with_siblings(target, map, &["$ref"], name, depth.through_ref());
        }
        if let Some(value) = map.get("const") {
            return value.clone();
        }
        if let Some(first) = map.get("enum").and_then(Json::as_array).and_then(|values| values.first()) {
            return first.clone();
        }
        if let Some(branches) = map.get("allOf").and_then(Json::as_array)
            && !branches.is_empty()
        {
            let mut merged = without(map, &["allOf"]);
            let mut followed_ref = false;
            for branch in branches {
                match branch {
                    Json::Object(branch) => {
                        let (inlined, followed) = self.inline_ref(branch);
                        followed_ref |= followed;
                        merged = merge(&merged, &inlined);
                    }
                    Json::Bool(false) => return Json::Null,
                    _ => {}
                }
            }
            let depth = if followed_ref { depth.through_ref() } else { depth.deeper() };
            return self.value(&Json::Object(merged), name, depth);
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(branches) = map.get(keyword).and_then(Json::as_array)
                && let Some(first) = branches.first()
            {
                // Past the ref depth, a `null` branch ends a recursive structure.
                let is_null = |branch: &&Json| branch.get("type").and_then(Json::as_str) == Some("null");
                let branch = if depth.minimal() { branches.iter().find(is_null).unwrap_or(first) } else { first };
                return self.with_siblings(branch, map, &["anyOf", "oneOf"], name, depth.deeper());
            }
        }

        match type_of(map, depth) {
            Some("null") => Json::Null,
            Some("boolean") => Json::Bool(false),
            Some("integer") => integer(map),
            Some("number") => number(map),
            Some("array") => self.array(map, name, depth),
            Some("object") => self.object(map, depth),
            _ => string(map, name),
        }
    }

    /// Generates from `target` with the constraining keywords of `map` (other than `skip`) laid
    /// over it; without such keywords, from `target` directly (no copy).
    fn with_siblings(&self, target: &Json, map: &Map<String, Json>, skip: &[&str], name: Option<&str>, depth: Depth) -> Json {
        let constrained = map.keys().any(|key| !skip.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()));
        if !constrained {
            return self.value(target, name, depth);
        }
        let siblings = without(map, skip);
        let merged = match target {
            Json::Object(target) => merge(target, &siblings),
            Json::Bool(false) => return Json::Null,
            _ => siblings,
        };
        self.value(&Json::Object(merged), name, depth)
    }

    /// A `#...` reference into the root schema.
    fn resolve(&self, reference: &str) -> Option<&Json> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        if pointer.contains('%') {
            return self.root.pointer(&percent_decode(pointer)?);
        }
        self.root.pointer(pointer)
    }

    /// An `allOf` branch with its `$ref` (one level) replaced by the target's keywords, so the
    /// merge sees them; and whether a ref was followed.
    fn inline_ref(&self, branch: &Map<String, Json>) -> (Map<String, Json>, bool) {
        match branch.get("$ref").and_then(Json::as_str).and_then(|reference| self.resolve(reference)) {
            Some(Json::Object(target)) => (merge(target, &without(branch, &["$ref"])), true),
            _ => (branch.clone(), false),
        }
    }

    fn array(&self, map: &Map<String, Json>, name: Option<&str>, depth: Depth) -> Json {
        let min_items = count(map, "minItems").unwrap_or(0);
        let max_items = count(map, "maxItems").unwrap_or(usize::MAX);
        let wanted = if depth.minimal() { min_items } else { self.array_len.max(min_items) };
        let len = wanted.min(max_items).min(MAX_ITEMS);

        // 2020-12 `prefixItems` + `items`, or draft-7 `items: [...]` + `additionalItems`.
        let (prefix, rest): (&[Json], Option<&Json>) = match (map.get("prefixItems"), map.get("items")) {
            (Some(Json::Array(prefix)), rest) => (prefix, rest),
            (_, Some(Json::Array(prefix))) => (prefix, map.get("additionalItems")),
            (_, rest) => (&[], rest),
        };
        let unique = map.get("uniqueItems") == Some(&Json::Bool(true));
        let mut items: Vec<Json> = Vec::with_capacity(len);
        for index in 0..len {
            let item = match prefix.get(index) {
                Some(schema) => self.value(schema, name, depth.deeper()),
                None => match rest {
                    // No more items are allowed.
                    Some(Json::Bool(false)) => break,
                    Some(schema) => self.value(schema, name, depth.deeper()),
                    None => Json::String(name_or_text(name).to_owned()),
                },
            };
            if unique && items.contains(&item) {
                continue;
            }
            items.push(item);
        }
        Json::Array(items)
    }

    fn object(&self, map: &Map<String, Json>, depth: Depth) -> Json {
        let required: Vec<&str> =
            map.get("required").and_then(Json::as_array).map(|names| names.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
        let additional = map.get("additionalProperties");
        let mut object = Map::new();
        if let Some(Json::Object(properties)) = map.get("properties") {
            for (key, schema) in properties {
                if depth.minimal() && !required.contains(&key.as_str()) {
                    continue;
                }
                object.insert(key.clone(), self.value(schema, Some(key), depth.deeper()));
            }
        }
        let extra_schema = match additional {
            Some(schema @ Json::Object(_)) => schema,
            _ => &Json::Bool(true),
        };
        for key in required {
            if !object.contains_key(key) {
                object.insert(key.to_owned(), self.value(extra_schema, Some(key), depth.deeper()));
            }
        }
        let min_properties = count(map, "minProperties").unwrap_or(0).min(MAX_ITEMS);
        let mut index = 0;
        while object.len() < min_properties && additional != Some(&Json::Bool(false)) {
            index += 1;
            let key = format!("key{index}");
            if !object.contains_key(&key) {
                let value = self.value(extra_schema, Some(&key), depth.deeper());
                object.insert(key, value);
            }
        }
        Json::Object(object)
    }
}

/// The schema's type: `type` (the first non-null entry of a list), else one inferred from the
/// keywords. Past the ref depth, a nullable type is `null`, which ends recursive structures.
fn type_of(map: &Map<String, Json>, depth: Depth) -> Option<&str> {
    match map.get("type") {
        Some(Json::String(name)) => return Some(name),
        Some(Json::Array(names)) => {
            let names: Vec<&str> = names.iter().filter_map(Json::as_str).collect();
            if depth.minimal() && names.contains(&"null") {
                return Some("null");
            }
            return names.iter().copied().find(|name| *name != "null").or(names.first().copied());
        }
        _ => {}
    }
    let has = |keys: &[&str]| keys.iter().any(|key| map.contains_key(*key));
    if has(&["properties", "required", "additionalProperties", "patternProperties", "minProperties", "maxProperties", "propertyNames"]) {
        Some("object")
    } else if has(&["items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems", "additionalItems"]) {
        Some("array")
    } else if has(&["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"]) {
        Some("number")
    } else {
        // `minLength`, `format`, `pattern` and the empty schema all give a string.
        None
    }
}

/// The smallest value of the schema's type, for when the generator must stop descending.
fn smallest(map: &Map<String, Json>) -> Json {
    if let Some(value) = map.get("const") {
        return value.clone();
    }
    if let Some(first) = map.get("enum").and_then(Json::as_array).and_then(|values| values.first()) {
        return first.clone();
    }
    match type_of(map, Depth { nested: 0, refs: REF_DEPTH }) {
        Some("object") => Json::Object(Map::new()),
        Some("array") => Json::Array(Vec::new()),
        Some("boolean") => Json::Bool(false),
        Some("integer") => integer(map),
        Some("number") => number(map),
        Some("string") => string(map, None),
        _ => Json::Null,
    }
}

fn name_or_text(name: Option<&str>) -> &str {
    match name {
        Some(name) if !name.is_empty() => name,
        _ => "text",
    }
}

fn string(map: &Map<String, Json>, name: Option<&str>) -> Json {
    let min_len = count(map, "minLength").unwrap_or(0).min(MAX_LEN);
    let max_len = count(map, "maxLength").unwrap_or(usize::MAX);
    let example = map.get("format").and_then(Json::as_str).and_then(format_example);
    let base = example.unwrap_or_else(|| name_or_text(name));
    let base_len = base.chars().count();
    if base_len >= min_len && base_len <= max_len {
        return Json::String(base.to_owned());
    }
    // Repeat up to `minLength`, cut at `maxLength`.
    let text: String = base.chars().cycle().take(min_len.max(base_len).min(max_len)).collect();
    Json::String(text)
}

/// A fixed example for the formats JSON Schema defines (and `url`).
fn format_example(format: &str) -> Option<&'static str> {
    Some(match format {
        "date-time" => "2026-01-01T00:00:00Z",
        "date" => "2026-01-01",
        "time" => "00:00:00Z",
        "duration" => "P1D",
        "email" | "idn-email" => "user@example.com",
        "uri" | "url" | "iri" | "uri-reference" | "iri-reference" => "https://example.com/",
        "uri-template" => "https://example.com/{id}",
        "uuid" => "00000000-0000-4000-8000-000000000000",
        "ipv4" => "192.0.2.1",
        "ipv6" => "2001:db8::1",
        "hostname" | "idn-hostname" => "example.com",
        "json-pointer" => "/",
        "relative-json-pointer" => "0",
        "regex" => ".*",
        _ => return None,
    })
}

fn number_of(map: &Map<String, Json>, key: &str) -> Option<f64> {
    map.get(key).and_then(Json::as_f64).filter(|value| value.is_finite())
}

/// The lower and upper bounds, `exclusive*` as numbers (2019+) or booleans (draft 4).
struct Bounds {
    minimum: Option<f64>,
    exclusive_minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_maximum: Option<f64>,
    multiple_of: Option<f64>,
}

impl Bounds {
    fn of(map: &Map<String, Json>) -> Bounds {
        let mut bounds = Bounds {
            minimum: number_of(map, "minimum"),
            exclusive_minimum: number_of(map, "exclusiveMinimum"),
            maximum: number_of(map, "maximum"),
            exclusive_maximum: number_of(map, "exclusiveMaximum"),
            multiple_of: number_of(map, "multipleOf").filter(|step| *step > 0.0),
        };
        if map.get("exclusiveMinimum") == Some(&Json::Bool(true)) {
            bounds.exclusive_minimum = bounds.minimum.take();
        }
        if map.get("exclusiveMaximum") == Some(&Json::Bool(true)) {
            bounds.exclusive_maximum = bounds.maximum.take();
        }
        bounds
    }
}

fn integer(map: &Map<String, Json>) -> Json {
    let bounds = Bounds::of(map);
    let mut lowest = f64::NEG_INFINITY;
    if let Some(minimum) = bounds.minimum {
        lowest = minimum.ceil();
    }
    if let Some(exclusive) = bounds.exclusive_minimum {
        lowest = lowest.max(exclusive.floor() + 1.0);
    }
    let mut highest = f64::INFINITY;
    if let Some(maximum) = bounds.maximum {
        highest = maximum.floor();
    }
    if let Some(exclusive) = bounds.exclusive_maximum {
        highest = highest.min(exclusive.ceil() - 1.0);
    }
    let mut value = if lowest.is_finite() { lowest } else { 0.0 };
    if value > highest {
        value = highest;
    }
    if let Some(step) = bounds.multiple_of {
        let up = (value / step).ceil() * step;
        value = if up <= highest { up } else { (highest / step).floor() * step };
        if value.fract() != 0.0 {
            value = value.round();
        }
    }
    if value.abs() < 9.0e15 {
        // An integral value this small is exactly an `i64`.
        Json::Number(Number::from(value as i64))
    } else {
        Number::from_f64(value).map_or(Json::Null, Json::Number)
    }
}

fn number(map: &Map<String, Json>) -> Json {
    let bounds = Bounds::of(map);
    let lower = match (bounds.minimum, bounds.exclusive_minimum) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let mut value = match (bounds.minimum, bounds.exclusive_minimum) {
        (Some(minimum), Some(exclusive)) if exclusive >= minimum => exclusive + 1.0,
        (Some(minimum), _) => minimum,
        (None, Some(exclusive)) => exclusive + 1.0,
        (None, None) => 0.0,
    };
    if let Some(maximum) = bounds.maximum
        && value > maximum
    {
        value = maximum;
    }
    if let Some(exclusive) = bounds.exclusive_maximum
        && value >= exclusive
    {
        value = match lower {
            // Halfway between the bounds stays inside both.
            Some(lower) => lower + (exclusive - lower) / 2.0,
            None => exclusive - 1.0,
        };
    }
    if let Some(step) = bounds.multiple_of {
        let up = (value / step).ceil() * step;
        let fits = bounds.maximum.is_none_or(|maximum| up <= maximum) && bounds.exclusive_maximum.is_none_or(|exclusive| up < exclusive);
        value = if fits { up } else { (value / step).floor() * step };
    }
    Number::from_f64(value).map_or(Json::Null, Json::Number)
}

/// A non-negative integer keyword (`minItems`, `maxLength`...), saturating.
fn count(map: &Map<String, Json>, key: &str) -> Option<usize> {
    let value = map.get(key)?;
    if let Some(count) = value.as_u64() {
        return Some(usize::try_from(count).unwrap_or(usize::MAX));
    }
    // `2.0` is a valid count in JSON Schema; negative or fractional values are ignored.
    let float = value.as_f64().filter(|float| *float >= 0.0 && float.fract() == 0.0)?;
    Some(float.min(usize::MAX as f64) as usize)
}

fn without(map: &Map<String, Json>, keys: &[&str]) -> Map<String, Json> {
    map.iter().filter(|(key, _)| !keys.contains(&key.as_str())).map(|(key, value)| (key.clone(), value.clone())).collect()
}

/// Lays `over` on `base`, as `allOf` would combine them for the purpose of generating a value:
/// `properties` are merged (a property in both is merged the same way), `required` is the union,
/// `type` the intersection (`integer` within `number`), the `min*` keywords take the larger and
/// the `max*` the smaller value; any other keyword of `over` replaces the one of `base`.
fn merge(base: &Map<String, Json>, over: &Map<String, Json>) -> Map<String, Json> {
    let mut merged = base.clone();
    for (key, value) in over {
        let combined = match (key.as_str(), merged.get(key)) {
            (_, None) => value.clone(),
            ("properties", Some(Json::Object(existing))) => match value {
                Json::Object(added) => {
                    let mut properties = existing.clone();
                    for (name, schema) in added {
                        let schema = match (properties.get(name), schema) {
                            (Some(Json::Object(a)), Json::Object(b)) => Json::Object(merge(a, b)),
                            _ => schema.clone(),
                        };
                        properties.insert(name.clone(), schema);
                    }
                    Json::Object(properties)
                }
                _ => value.clone(),
            },
            ("required", Some(Json::Array(existing))) => {
                let mut names = existing.clone();
                for name in value.as_array().into_iter().flatten() {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                Json::Array(names)
            }
            ("type", Some(existing)) => intersect_types(existing, value),
            ("minimum" | "exclusiveMinimum" | "minLength" | "minItems" | "minProperties", Some(existing)) => {
                pick(existing, value, |a, b| if a >= b { existing } else { value })
            }
            ("maximum" | "exclusiveMaximum" | "maxLength" | "maxItems" | "maxProperties", Some(existing)) => {
                pick(existing, value, |a, b| if a <= b { existing } else { value })
            }
            _ => value.clone(),
        };
        merged.insert(key.clone(), combined);
    }
    merged
}

fn pick<'a>(a: &'a Json, b: &'a Json, choose: impl Fn(f64, f64) -> &'a Json) -> Json {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => choose(x, y).clone(),
        _ => b.clone(),
    }
}

fn intersect_types(a: &Json, b: &Json) -> Json {
    fn names(value: &Json) -> Vec<&str> {
        match value {
            Json::String(name) => vec![name.as_str()],
            Json::Array(names) => names.iter().filter_map(Json::as_str).collect(),
            _ => Vec::new(),
        }
    }
    let (left, right) = (names(a), names(b));
    let mut both: Vec<&str> = Vec::new();
    for name in &left {
        for other in &right {
            let common = match (*name, *other) {
                (x, y) if x == y => Some(x),
                ("integer", "number") | ("number", "integer") => Some("integer"),
                _ => None,
            };
            if let Some(common) = common
                && !both.contains(&common)
            {
                both.push(common);
            }
        }
    }
    match both.as_slice() {
        [] => b.clone(),
        [single] => Json::String((*single).to_owned()),
        many => Json::Array(many.iter().map(|name| Json::String((*name).to_owned())).collect()),
    }
}

/// Decodes `%XX` escapes of a URI fragment; `None` when they are malformed.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

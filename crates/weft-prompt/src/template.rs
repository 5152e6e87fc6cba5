//! Jinja templates rendered as WayFlow renders them.

use std::collections::BTreeSet;
use std::fmt::{self, Write};
use std::sync::{Arc, LazyLock};

use indexmap::IndexMap;
use minijinja::value::{Kwargs, Object, ObjectRepr, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use serde_json::{Map, Value as Json};

use crate::pyfmt::{py_json_dumps, py_json_dumps_indent, try_write_py_str_repr, write_py_float};

/// The most template instructions one render may execute. It stops runaway loops (for instance
/// over a huge `range`); ordinary prompts use a few hundred.
pub const FUEL: u64 = 5_000_000;

const NAME: &str = "template";

/// An error compiling or rendering a template.
///
/// The message says what went wrong and where (line numbers are 1-based, counted in the
/// template text), and names the variable when one is missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template text is not valid Jinja.
    #[error("template syntax error{}: {detail}; fix the template text", at(*.line))]
    Syntax {
        /// Line of the error.
        line: Option<usize>,
        /// What the parser expected or found.
        detail: String,
    },
    /// A variable the template uses was not passed.
    #[error(
        "the template expects a variable `{name}` but it was not passed{}: give the node an input named `{name}` (or a default for it), or remove it from the template",
        at(*.line)
    )]
    UndefinedVariable {
        /// Name of the missing variable.
        name: String,
        /// Line where it is used.
        line: Option<usize>,
    },
    /// An undefined value was used: a missing member (`{{ x.a }}`) or item.
    #[error("the template used an undefined value{}{}: check that the member or item exists, or test it with `is defined`", at(*.line), snippet(.expression))]
    UndefinedValue {
        /// Line of the expression.
        line: Option<usize>,
        /// The template text of the expression, when known.
        expression: Option<String>,
    },
    /// The render executed more than [`FUEL`] instructions.
    #[error("the template ran too long{}: it executed more than {FUEL} instructions; look for a runaway loop", at(*.line))]
    OutOfFuel {
        /// Line where it stopped.
        line: Option<usize>,
    },
    /// The render built more than [`MAX_RENDER_BYTES`] of text.
    #[error("the template built more than {} MiB of text (strings made and text printed); look for a string doubled in a loop or a macro", MAX_RENDER_BYTES >> 20)]
    TooLarge,
    /// Any other failure while rendering (an unknown filter, an invalid operation, ...).
    #[error("template rendering failed{}{}: {detail}", at(*.line), snippet(.expression))]
    Render {
        /// Line of the error.
        line: Option<usize>,
        /// The template text of the failing expression, when known.
        expression: Option<String>,
        /// What failed.
        detail: String,
    },
}

impl TemplateError {
    /// The name of the exception WayFlow (Jinja2) raises in the same situation, for matching by a
    /// catch-exception node: `TemplateSyntaxError`, `UndefinedError`, or `TemplateError` for the
    /// rest.
    pub fn wayflow_exception_name(&self) -> &'static str {
        match self {
            TemplateError::Syntax { .. } => "TemplateSyntaxError",
            TemplateError::UndefinedVariable { .. } | TemplateError::UndefinedValue { .. } => "UndefinedError",
            TemplateError::OutOfFuel { .. } | TemplateError::TooLarge | TemplateError::Render { .. } => "TemplateError",
        }
    }
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(" at line {l}")).unwrap_or_default()
}

fn snippet(expression: &Option<String>) -> String {
    expression.as_ref().map(|e| format!(" in `{e}`")).unwrap_or_default()
}

/// A compiled Jinja template, rendered the way WayFlow renders its prompt templates.
///
/// * Missing variables are errors that name the variable (Jinja2's `StrictUndefined`), and so is
///   testing an undefined value in `{% if %}`.
/// * Printed values follow Python's `str()`: strings verbatim, `None`, `True`/`False`, `2.0`,
///   `1e+16`, dicts `{'a': 1}` and lists `[1, 'x']` in Python's form. The `string` and `join`
///   filters print the same way, and `tojson` writes Python's `json.dumps` (with `<`, `>`, `&` and
///   `'` escaped, as Jinja2 does).
/// * No auto-escaping; one trailing newline of the template is removed and newlines are normalized
///   to `\n` (Jinja2's defaults).
/// * No global functions (`range`, `dict`, `namespace`): WayFlow's sandbox has none.
/// * A render executes at most [`FUEL`] instructions.
///
/// Compile once with [`Template::new`] and render many times; a `Template` is `Send + Sync`.
///
/// ```
/// use serde_json::json;
/// use weft_prompt::Template;
/// let t = Template::new("Hello {{ name }}: {{ data }}, {{ ok }}").unwrap();
/// let vars = json!({"name": "Ann", "data": {"a": [1, 2.0, null]}, "ok": true});
/// assert_eq!(t.render(vars.as_object().unwrap()).unwrap(), "Hello Ann: {'a': [1, 2.0, None]}, True");
/// ```
pub struct Template {
    env: Environment<'static>,
    source: String,
    /// Every name the template may read as a variable (a superset: minijinja's own analysis misses
    /// the target of a slice such as `s[1:3]`, so the identifiers of the code are added).
    names: Arc<[Arc<str>]>,
    /// The variables minijinja finds undeclared; used to name a missing one.
    undeclared: Vec<String>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template").field("source", &self.source).field("variables", &self.undeclared).finish()
    }
}

static PROTOTYPE: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_debug(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_fuel(Some(FUEL));
    env.set_formatter(|out, _state, value| {
        write_py_value(&mut Charged(out), value, true).map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write"))
    });
    for global in ["range", "dict", "namespace", "debug", "lipsum", "cycler", "joiner"] {
        env.remove_global(global);
    }
    env.add_filter("string", |value: &Value| -> Result<Value, Error> { Ok(Value::from(py_str_value(value)?)) });
    env.add_filter("join", join_filter);
    env.add_filter("tojson", tojson_filter);
    env.add_filter("wordcount", |value: &Value| -> Result<usize, Error> { Ok(word_count(&py_str_value(value)?)) });
    env.add_filter("center", center_filter);
    env.add_filter("truncate", truncate_filter);
    env.add_filter("filesizeformat", filesizeformat_filter);
    env
});

impl Template {
    /// Compiles the template text.
    ///
    /// Fails with [`TemplateError::Syntax`] when the text is not valid Jinja.
    pub fn new(source: &str) -> Result<Template, TemplateError> {
        let source = normalize_newlines(source);
        let mut env = PROTOTYPE.clone();
        env.add_template_owned(NAME, source.clone()).map_err(|e| convert_error(&e, &source, &[], &[], &Map::new()))?;
        let undeclared: BTreeSet<String> = env
            .get_template(NAME)
            .map_err(|e| convert_error(&e, &source, &[], &[], &Map::new()))?
            .undeclared_variables(false)
            .into_iter()
            .collect();
        let mut names = code_identifiers(&source);
        names.extend(undeclared.iter().cloned());
        let names: Arc<[Arc<str>]> = names.into_iter().map(Arc::from).collect();
        Ok(Template { env, source, names, undeclared: undeclared.into_iter().collect() })
    }

    /// The template text (with newlines normalized).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level variables the template reads, sorted (minijinja's analysis; the target of a
    /// slice such as `s[1:3]` is not reported).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.undeclared.iter().map(String::as_str)
    }

    /// Renders the template with these variables.
    ///
    /// Values print as Python's `str()` prints them; cast them to the inputs' declared types first
    /// ([`crate::cast_to_input`]) to get WayFlow's text. Only the variables the template uses are
    /// converted.
    pub fn render(&self, vars: &Map<String, Json>) -> Result<String, TemplateError> {
        let values: Vec<Option<Value>> = self.names.iter().map(|n| vars.get(&**n).map(json_to_value)).collect();
        let ctx = Value::from_object(Context { names: self.names.clone(), values });
        let tmpl = self.env.get_template(NAME).map_err(|e| convert_error(&e, &self.source, &self.names, &self.undeclared, vars))?;
        let (rendered, spent) = minijinja::weft_budget::with_budget(MAX_RENDER_BYTES, || tmpl.render(ctx));
        if spent {
            return Err(TemplateError::TooLarge);
        }
        rendered.map_err(|e| convert_error(&e, &self.source, &self.names, &self.undeclared, vars))
    }
}

/// The most bytes a render may build: every string value made and every byte printed, summed.
/// A prompt is far below it; a template doubling a string in a loop or a macro reaches it in a
/// few dozen instructions, long before the fuel runs out.
pub const MAX_RENDER_BYTES: u64 = 64 << 20;

/// A writer charging the render's byte budget for what it writes (Python's `str()` of a list
/// that shares its parts can be far larger than the list).
struct Charged<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Charged<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !minijinja::weft_budget::bytes(s.len()) {
            return Err(fmt::Error);
        }
        self.0.write_str(s)
    }
}

/// Jinja2 reads every `\r\n`, `\r` and `\n` in the template text as `\n`.
fn normalize_newlines(source: &str) -> String {
    if source.contains('\r') { source.replace("\r\n", "\n").replace('\r', "\n") } else { source.to_owned() }
}

/// The identifiers in the code parts of the template (`{{ }}` and `{% %}`), outside string literals
/// and not after a `.`: a superset of the variables it reads.
fn code_identifiers(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = source;
    while let Some(open) = rest.find(['{']) {
        let after = &rest[open + 1..];
        let close = match after.chars().next() {
            Some('{') => "}}",
            Some('%') => "%}",
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        let code = &body[..end];
        let mut chars = code.char_indices().peekable();
        let mut prev = ' ';
        while let Some((i, c)) = chars.next() {
            if c == '"' || c == '\'' {
                for (_, d) in chars.by_ref() {
                    if d == c {
                        break;
                    }
                }
                prev = c;
                continue;
            }
            if c.is_alphabetic() || c == '_' {
                let mut j = i + c.len_utf8();
                while let Some(&(k, d)) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' {
                        j = k + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                if prev != '.' {
                    names.insert(code[i..j].to_owned());
                }
                prev = 'a';
                continue;
            }
            if !c.is_whitespace() {
                prev = c;
            }
        }
        rest = &body[(end + close.len()).min(body.len())..];
    }
    names
}

fn convert_error(e: &Error, source: &str, names: &[Arc<str>], undeclared: &[String], vars: &Map<String, Json>) -> TemplateError {
    let line = e.line();
    let expression = e.range().and_then(|r| source.get(r)).map(str::to_owned);
    let detail = e.detail().map(str::to_owned).unwrap_or_else(|| e.kind().to_string());
    match e.kind() {
        ErrorKind::SyntaxError | ErrorKind::BadEscape | ErrorKind::InvalidDelimiter => TemplateError::Syntax { line, detail },
        ErrorKind::UndefinedError => {
            // Name the variable when one the template reads is missing and the failing expression
            // uses it; prefer the variables minijinja reports over other identifiers.
            let missing_undeclared: Vec<&str> = undeclared.iter().map(String::as_str).filter(|n| !vars.contains_key(*n)).collect();
            let used = |n: &&str| expression.as_deref().is_some_and(|x| mentions(x, n));
            let named = missing_undeclared
                .iter()
                .copied()
                .find(used)
                .or_else(|| names.iter().map(|n| &**n).filter(|n| !vars.contains_key(*n)).find(used))
                .or_else(|| if expression.is_none() && missing_undeclared.len() == 1 { missing_undeclared.first().copied() } else { None });
            match named {
                Some(name) => TemplateError::UndefinedVariable { name: name.to_owned(), line },
                None => TemplateError::UndefinedValue { line, expression },
            }
        }
        ErrorKind::OutOfFuel => TemplateError::OutOfFuel { line },
        _ => TemplateError::Render { line, expression, detail },
    }
}

/// Whether `name` occurs in `text` as a whole identifier.
fn mentions(text: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(name).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident) && before != Some('.')
    })
}

/// The render context: the template's variables, converted from JSON.
#[derive(Debug)]
struct Context {
    names: Arc<[Arc<str>]>,
    values: Vec<Option<Value>>,
}

impl Object for Context {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        let i = self.names.iter().position(|n| &**n == key)?;
        self.values[i].clone()
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        let keys: Vec<Value> = self.names.iter().zip(&self.values).filter(|(_, v)| v.is_some()).map(|(n, _)| Value::from(&**n)).collect();
        minijinja::value::Enumerator::Values(keys)
    }
}

/// JSON to a template value; object members keep their order.
fn json_to_value(v: &Json) -> Value {
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::from(items.iter().map(json_to_value).collect::<Vec<_>>()),
        Json::Object(members) => {
            let map: IndexMap<Value, Value> = members.iter().map(|(k, x)| (Value::from(k.as_str()), json_to_value(x))).collect();
            Value::from(map)
        }
    }
}

/// Python's `str()` of a template value (`top`) or its `repr()` (inside a container).
fn write_py_value<W: Write>(out: &mut W, v: &Value, top: bool) -> fmt::Result {
    match v.kind() {
        ValueKind::Undefined => Ok(()),
        ValueKind::None => out.write_str("None"),
        ValueKind::Bool => out.write_str(if v.is_true() { "True" } else { "False" }),
        ValueKind::Number => {
            if v.is_integer() {
                write!(out, "{v}")
            } else {
                let mut s = String::new();
                write_py_float(&mut s, f64::try_from(v.clone()).unwrap_or(f64::NAN));
                out.write_str(&s)
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            if top { out.write_str(s) } else { try_write_py_str_repr(out, s) }
        }
        ValueKind::Bytes => {
            out.write_str("b'")?;
            for b in v.as_bytes().unwrap_or_default() {
                match b {
                    b'\\' => out.write_str("\\\\")?,
                    b'\'' => out.write_str("\\'")?,
                    b'\n' => out.write_str("\\n")?,
                    b'\r' => out.write_str("\\r")?,
                    b'\t' => out.write_str("\\t")?,
                    0x20..=0x7e => out.write_char(*b as char)?,
                    _ => write!(out, "\\x{b:02x}")?,
                }
            }
            out.write_char('\'')
        }
        ValueKind::Map => {
            out.write_char('{')?;
            if let Some(obj) = v.as_object()
                && let Some(pairs) = obj.try_iter_pairs()
            {
                for (i, (k, x)) in pairs.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_py_value(out, &k, false)?;
                    out.write_str(": ")?;
                    write_py_value(out, &x, false)?;
                }
            }
            out.write_char('}')
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let tuple = v.is_tuple();
            out.write_char(if tuple { '(' } else { '[' })?;
            let mut n = 0;
            if let Ok(items) = v.try_iter() {
                for (i, x) in items.enumerate() {
                    if i > 0 {
                        out.write_str(", ")?;
                    }
                    write_py_value(out, &x, false)?;
                    n += 1;
                }
            }
            if tuple && n == 1 {
                out.write_char(',')?;
            }
            out.write_char(if tuple { ')' } else { ']' })
        }
        ValueKind::Plain | ValueKind::Invalid => write!(out, "{v}"),
        _ => write!(out, "{v}"),
    }
}

fn py_str_value(v: &Value) -> Result<String, Error> {
    let mut s = String::new();
    write_py_value(&mut Charged(&mut s), v, true).map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write"))?;
    Ok(s)
}

/// Jinja2's `join`: the items' `str()` joined with the separator.
fn join_filter(value: &Value, sep: Option<&str>) -> Result<String, Error> {
    let sep = sep.unwrap_or("");
    if let Some(s) = value.as_str() {
        // Joining a string joins its characters.
        return Ok(s.chars().map(String::from).collect::<Vec<_>>().join(sep));
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push_str(&py_str_value(&item)?);
    }
    Ok(out)
}

/// Jinja2's `tojson` with WayFlow's policy (`sort_keys=False`): Python's `json.dumps`, then `<`,
/// `>`, `&` and `'` written as `\u003c`, `\u003e`, `\u0026` and `\u0027`.
fn tojson_filter(value: &Value, indent: Option<usize>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match indent {
        Some(i) => Some(i),
        None => kwargs.get::<Option<usize>>("indent")?,
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    let text = match indent {
        Some(n) => py_json_dumps_indent(&json, n),
        None => py_json_dumps(&json),
    };
    let text = text.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\'', "\\u0027");
    Ok(Value::from_safe_string(text))
}

/// Jinja2's `wordcount`: the number of `\w+` runs.
fn word_count(s: &str) -> usize {
    let mut count = 0;
    let mut in_word = false;
    for c in s.chars() {
        let w = c.is_alphanumeric() || c == '_';
        if w && !in_word {
            count += 1;
        }
        in_word = w;
    }
    count
}

/// Jinja2's `center(width=80)`: Python's `str.center`.
fn center_filter(value: &Value, width: Option<usize>) -> Result<String, Error> {
    let s = py_str_value(value)?;
    let width = width.unwrap_or(80);
    let len = s.chars().count();
    if len >= width {
        return Ok(s);
    }
    let marg = width - len;
    let left = marg / 2 + (marg & width & 1);
    Ok(format!("{}{s}{}", " ".repeat(left), " ".repeat(marg - left)))
}

/// Jinja2's `truncate(length=255, killwords=False, end='...', leeway=5)`.
fn truncate_filter(
    value: &Value,
    length: Option<usize>,
    killwords: Option<bool>,
    end: Option<&str>,
    leeway: Option<usize>,
) -> Result<String, Error> {
    let s = py_str_value(value)?;
    let length = length.unwrap_or(255);
    let end = end.unwrap_or("...");
    let leeway = leeway.unwrap_or(5);
    let chars: Vec<char> = s.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(Error::new(ErrorKind::InvalidOperation, "truncate: the length must not be shorter than the end marker"));
    }
    if chars.len() <= length + leeway {
        return Ok(s);
    }
    let head: String = chars[..length - end_len].iter().collect();
    if killwords == Some(true) {
        return Ok(head + end);
    }
    let kept = match head.rfind(' ') {
        Some(i) => &head[..i],
        None => head.as_str(),
    };
    Ok(format!("{kept}{end}"))
}

/// Jinja2's `filesizeformat(binary=False)`.
fn filesizeformat_filter(value: &Value, binary: Option<bool>) -> Result<String, Error> {
    let bytes = f64::try_from(value.clone()).map_err(|_| Error::new(ErrorKind::InvalidOperation, "filesizeformat needs a number"))?;
    let binary = binary == Some(true);
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes =
        if binary { ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"] } else { ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"] };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes.trunc() as i64));
    }
    let mut unit = base;
    for (i, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(i as i32 + 2);
        if bytes < unit {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    Ok(format!("{:.1} {}", base * bytes / unit, prefixes[prefixes.len() - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(src: &str, vars: Json) -> Result<String, TemplateError> {
        Template::new(src)?.render(vars.as_object().expect("object"))
    }

    #[test]
    fn python_str_of_values() {
        let vars = json!({"d": {"b": 1, "a": [1, 2.5, true, null], "é": "ü"}, "f": 2.0, "big": 1e16, "t": true, "n": null, "s": "it's"});
        assert_eq!(
            render("{{ d }}|{{ f }}|{{ big }}|{{ t }}|{{ n }}|{{ s }}", vars).unwrap(),
            "{'b': 1, 'a': [1, 2.5, True, None], 'é': 'ü'}|2.0|1e+16|True|None|it's"
        );
    }

    #[test]
    fn loops_filters_and_trailing_newline() {
        let vars = json!({"items": ["a", 1, false], "x": 3});
        assert_eq!(render("{% for i in items %}[{{ i }}]{% endfor %}\n", vars.clone()).unwrap(), "[a][1][False]");
        assert_eq!(render("{{ items | join(', ') }}", vars.clone()).unwrap(), "a, 1, False");
        assert_eq!(render("{{ items | tojson }}", vars.clone()).unwrap(), "[\"a\", 1, false]");
        assert_eq!(render("{{ x / 2 }} {{ x // 2 }} {{ x | string }}", vars.clone()).unwrap(), "1.5 1 3");
        assert_eq!(render("a\r\nb\n\n", vars).unwrap(), "a\nb\n");
    }

    #[test]
    fn undefined_variables_are_named() {
        let err = render("Hi\n{{ name }}", json!({})).unwrap_err();
        assert_eq!(err, TemplateError::UndefinedVariable { name: "name".into(), line: Some(2) });
        assert!(err.to_string().contains("`name`"), "{err}");
        let err = render("{% if flag %}x{% endif %}", json!({})).unwrap_err();
        assert!(matches!(err, TemplateError::UndefinedVariable { ref name, .. } if name == "flag"), "{err:?}");
        let err = render("{{ d.missing }}", json!({"d": {"a": 1}})).unwrap_err();
        assert!(matches!(err, TemplateError::UndefinedValue { .. }), "{err:?}");
        assert_eq!(err.wayflow_exception_name(), "UndefinedError");
        assert!(render("{{ range(3) }}", json!({})).is_err());
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = Template::new("ok\n{% if %}").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax { line: Some(2), .. }), "{err:?}");
    }

    #[test]
    fn template_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Template>();
    }
}

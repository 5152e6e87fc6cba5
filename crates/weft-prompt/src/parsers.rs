//! WayFlow's output parsers (`PluginJsonOutputParser`, `PluginRegexOutputParser`): text in, text out.

use fancy_regex::{Regex, RegexBuilder};
use serde_json::{Map, Value as Json};

use crate::jq::{JqError, JqFailure, JqQuery};
use crate::lenient::parse_lenient;
use crate::pyfmt::{py_json_dumps, write_py_str_repr};
use crate::toolcalls::ToolCallFormat;

/// Python's `re.IGNORECASE`.
pub const IGNORECASE: i64 = 2;
/// Python's `re.MULTILINE`.
pub const MULTILINE: i64 = 8;
/// Python's `re.DOTALL`.
pub const DOTALL: i64 = 16;
/// Python's `re.VERBOSE`.
pub const VERBOSE: i64 = 64;
/// Python's `re.ASCII`.
pub const ASCII: i64 = 256;

/// Backtracking budget of one regex search (fancy-regex steps); a search that exceeds it counts as
/// no match.
const BACKTRACK_LIMIT: usize = 1_000_000;

/// A parser component that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParserError {
    /// A jq query of `PluginJsonOutputParser.properties` does not compile.
    #[error("the jq query for `{member}` (`{query}`) cannot be used: {error}; fix the query in the parser's `properties`")]
    Jq {
        /// The member of `properties`.
        member: String,
        /// The query text.
        query: String,
        /// What is wrong with it.
        error: JqError,
    },
    /// `properties` is neither an object of strings nor null.
    #[error("`properties` of a JSON output parser must be an object mapping names to jq queries (strings) or null, got {found}")]
    Properties {
        /// What was found instead.
        found: String,
    },
    /// A regular expression does not compile.
    #[error("the regular expression {}`{pattern}` does not compile: {message}; fix `regex_pattern`", name.as_ref().map(|n| format!("`{n}`: ")).unwrap_or_default())]
    Regex {
        /// The name of the pattern, for named patterns.
        name: Option<String>,
        /// The pattern text.
        pattern: String,
        /// What the regex engine reported.
        message: String,
    },
    /// `regex_pattern` (or one of its members) has the wrong shape.
    #[error("invalid `regex_pattern`{}: {message}", name.as_ref().map(|n| format!(" (pattern `{n}`)")).unwrap_or_default())]
    Pattern {
        /// The name of the pattern, for named patterns.
        name: Option<String>,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// One regular expression of a regex parser.
#[derive(Debug, Clone)]
pub struct RegexPattern {
    pattern: String,
    flags: i64,
    last: bool,
    regex: Regex,
}

impl RegexPattern {
    /// Compiles a Python regular expression with Python's integer `flags` (IGNORECASE 2, MULTILINE
    /// 8, DOTALL 16, VERBOSE 64; ASCII 256 is accepted but `\w`, `\d`, `\s` stay Unicode-aware).
    /// `last` takes the last match instead of the first.
    pub fn new(pattern: &str, flags: i64, last: bool) -> Result<RegexPattern, String> {
        let multiline = flags & MULTILINE != 0 || inline_flag(pattern, 'm');
        let translated = translate_python_regex(pattern, multiline);
        let regex = RegexBuilder::new(&translated)
            .case_insensitive(flags & IGNORECASE != 0)
            .multi_line(flags & MULTILINE != 0)
            .dot_matches_new_line(flags & DOTALL != 0)
            .verbose_mode(flags & VERBOSE != 0)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RegexPattern { pattern: pattern.to_owned(), flags, last, regex })
    }

    /// The pattern text as given.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Python's integer flags.
    pub fn flags(&self) -> i64 {
        self.flags
    }

    /// Whether the last match is taken (`match: "last"`).
    pub fn takes_last(&self) -> bool {
        self.last
    }

    /// The number of capturing groups in the pattern.
    pub fn groups(&self) -> usize {
        self.regex.captures_len().saturating_sub(1)
    }

    /// Python's `re.findall`: every non-overlapping match, each as the whole match (no group), the
    /// group's text (one group; `""` when it did not take part) or the Python `repr` of the tuple of
    /// groups (several).
    pub fn findall(&self, text: &str) -> Vec<String> {
        let groups = self.groups();
        self.findall_groups(text)
            .into_iter()
            .map(|parts| match groups {
                0 | 1 => parts.into_iter().next().unwrap_or_default(),
                _ => {
                    let mut s = String::from("(");
                    for (i, part) in parts.iter().enumerate() {
                        if i > 0 {
                            s.push_str(", ");
                        }
                        write_py_str_repr(&mut s, part);
                    }
                    s.push(')');
                    s
                }
            })
            .collect()
    }

    /// Python's `re.findall` with each match as its parts: `[whole match]` with no group, `[group]`
    /// with one, every group's text with several (`""` for a group that did not take part). A
    /// search past the backtracking budget ends the list.
    pub fn findall_groups(&self, text: &str) -> Vec<Vec<String>> {
        let groups = self.groups();
        let mut found = Vec::new();
        let mut pos = 0;
        let mut must_advance = false;
        while pos <= text.len() {
            let caps = match self.regex.captures_from_pos(text, pos) {
                Ok(Some(c)) => c,
                _ => break,
            };
            let Some(whole) = caps.get(0) else { break };
            if must_advance && whole.start() == pos && whole.end() == pos {
                // Python does not report a second empty match at the same place.
                match text[pos..].chars().next() {
                    Some(c) => {
                        pos += c.len_utf8();
                        must_advance = false;
                        continue;
                    }
                    None => break,
                }
            }
            let group_text = |i: usize| caps.get(i).map(|m| m.as_str().to_owned()).unwrap_or_default();
            found.push(match groups {
                0 => vec![whole.as_str().to_owned()],
                n => (1..=n).map(group_text).collect(),
            });
            must_advance = whole.start() == whole.end();
            pos = whole.end();
        }
        found
    }

    /// The parser's result for this pattern: the first (or last) match, else `""` when `strict`,
    /// else the text unchanged.
    fn extract(&self, text: &str, strict: bool) -> String {
        let mut matches = self.findall(text);
        let chosen = if self.last { matches.pop() } else { matches.into_iter().next() };
        match chosen {
            Some(m) => m,
            None if strict => String::new(),
            None => text.to_owned(),
        }
    }
}

/// Whether the pattern starts with a global inline flag group such as `(?m)` containing `flag`.
fn inline_flag(pattern: &str, flag: char) -> bool {
    pattern
        .strip_prefix("(?")
        .and_then(|r| r.split_once(')'))
        .is_some_and(|(flags, _)| flags.chars().all(|c| c.is_ascii_alphabetic()) && flags.contains(flag))
}

/// Rewrites the Python constructs whose meaning differs in fancy-regex: `\Z` (end of text),
/// `$` without MULTILINE (end of text or before a final newline), `{,n}` (no lower bound) and a `{`
/// that does not start a quantifier (a literal in Python).
fn translate_python_regex(pattern: &str, multiline: bool) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                match chars.get(i + 1) {
                    Some('Z') if !in_class => out.push_str("\\z"),
                    Some(n) => {
                        out.push('\\');
                        out.push(*n);
                    }
                    None => out.push('\\'),
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '[' if in_class => out.push_str("\\["),
            '$' if !in_class && !multiline => out.push_str("(?=\\n?\\z)"),
            '{' if !in_class => {
                let rest: String = chars[i + 1..].iter().take_while(|c| **c != '}').collect();
                let closed = chars.len() > i + 1 + rest.len();
                let valid = closed && {
                    let (lo, hi) = rest.split_once(',').unwrap_or((rest.as_str(), ""));
                    !rest.is_empty()
                        && lo.chars().all(|c| c.is_ascii_digit())
                        && hi.chars().all(|c| c.is_ascii_digit())
                        && !(lo.is_empty() && hi.is_empty())
                };
                if valid {
                    out.push('{');
                    if rest.starts_with(',') {
                        out.push('0');
                    }
                    out.push_str(&rest);
                    out.push('}');
                    i += rest.len() + 2;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' if !in_class => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// The patterns of a regex parser.
#[derive(Debug, Clone)]
pub enum RegexSpec {
    /// One pattern: the result is its match.
    Single(RegexPattern),
    /// Named patterns: the result is the JSON object `{name: match, ...}` (Python's `json.dumps`).
    Named(Vec<(String, RegexPattern)>),
}

/// An output parser of a prompt template object (FORMAT 11, 11.1), applied to the model's answer
/// text, in list order.
#[derive(Debug, Clone)]
pub enum OutputParser {
    /// `PluginJsonOutputParser`: lenient JSON, re-serialized; with `properties`, an object built
    /// from one jq query per member.
    Json {
        /// Member name and jq query, in order; `None` keeps the parsed value.
        properties: Option<Vec<(String, JqQuery)>>,
    },
    /// `PluginRegexOutputParser`.
    Regex {
        /// The pattern or named patterns.
        patterns: RegexSpec,
        /// `strict`: no match gives `""` (else the text is left unchanged).
        strict: bool,
    },
    /// A tool output parser (`PluginJsonToolOutputParser`, `PluginPythonToolOutputParser`,
    /// `PluginReactToolOutputParser`): calls written in the text become a tool request, whose
    /// text is the thoughts (see [`ToolCallFormat::read`]).
    Tools(ToolCallFormat),
}

fn parse_pattern(v: &Json, name: Option<&str>, default_flags: i64) -> Result<RegexPattern, ParserError> {
    let shape_error = |message: String| ParserError::Pattern { name: name.map(str::to_owned), message };
    let (pattern, flags, last) = match v {
        Json::String(p) => (p.as_str(), default_flags, false),
        Json::Object(m) => {
            let pattern =
                m.get("pattern").and_then(Json::as_str).ok_or_else(|| shape_error("a pattern object needs a string `pattern`".into()))?;
            let flags = match m.get("flags") {
                None | Some(Json::Null) => 0,
                Some(f) => {
                    f.as_i64().ok_or_else(|| shape_error(format!("`flags` must be an integer (Python's re flags) or null, got {f}")))?
                }
            };
            let last = match m.get("match") {
                None | Some(Json::Null) => false,
                Some(Json::String(s)) if s == "first" => false,
                Some(Json::String(s)) if s == "last" => true,
                Some(other) => return Err(shape_error(format!("`match` must be \"first\" or \"last\", got {other}"))),
            };
            (pattern, flags, last)
        }
        other => return Err(shape_error(format!("expected a string or a pattern object {{pattern, match, flags}}, got {other}"))),
    };
    RegexPattern::new(pattern, flags, last).map_err(|message| ParserError::Regex {
        name: name.map(str::to_owned),
        pattern: pattern.to_owned(),
        message,
    })
}

/// Whether an object is a single pattern `{pattern, match, flags}` (FORMAT 11's suggestion for
/// Weft) rather than named patterns.
fn is_single_pattern(m: &Map<String, Json>) -> bool {
    m.get("pattern").is_some_and(Json::is_string) && m.keys().all(|k| matches!(k.as_str(), "pattern" | "match" | "flags"))
}

impl OutputParser {
    /// Builds a JSON parser from the component's `properties` (an object of jq queries, or null /
    /// absent). Every query is compiled now; one that does not compile is an error naming it.
    pub fn json(properties: Option<&Json>) -> Result<OutputParser, ParserError> {
        let properties = match properties {
            None | Some(Json::Null) => None,
            Some(Json::Object(m)) => {
                let mut compiled = Vec::with_capacity(m.len());
                for (member, query) in m {
                    let query = query
                        .as_str()
                        .ok_or_else(|| ParserError::Properties { found: format!("a non-string query for `{member}`: {query}") })?;
                    let q = JqQuery::compile(query).map_err(|error| ParserError::Jq {
                        member: member.clone(),
                        query: query.to_owned(),
                        error,
                    })?;
                    compiled.push((member.clone(), q));
                }
                Some(compiled)
            }
            Some(other) => return Err(ParserError::Properties { found: other.to_string() }),
        };
        Ok(OutputParser::Json { properties })
    }

    /// Builds a regex parser from the component's `regex_pattern` and `strict`.
    ///
    /// `regex_pattern` is a string (compiled with DOTALL, as WayFlow does), a single pattern object
    /// `{"pattern", "match": "first"|"last", "flags": int|null}` (flags null means 0), or an object
    /// of named patterns whose values are strings (DOTALL) or pattern objects. An object with a
    /// string `pattern` and no members other than `pattern`, `match` and `flags` is read as a single
    /// pattern (FORMAT 11's suggestion for Weft); any other object as named patterns.
    pub fn regex(regex_pattern: &Json, strict: bool) -> Result<OutputParser, ParserError> {
        let patterns = match regex_pattern {
            Json::String(_) => RegexSpec::Single(parse_pattern(regex_pattern, None, DOTALL)?),
            Json::Object(m) if is_single_pattern(m) => RegexSpec::Single(parse_pattern(regex_pattern, None, DOTALL)?),
            Json::Object(m) => {
                let mut named = Vec::with_capacity(m.len());
                for (name, v) in m {
                    named.push((name.clone(), parse_pattern(v, Some(name), DOTALL)?));
                }
                RegexSpec::Named(named)
            }
            other => {
                return Err(ParserError::Pattern {
                    name: None,
                    message: format!(
                        "expected a string, a pattern object {{pattern, match, flags}} or an object of named patterns, got {other}"
                    ),
                });
            }
        };
        Ok(OutputParser::Regex { patterns, strict })
    }

    /// Applies the parser to the answer text.
    ///
    /// * JSON: the text parsed leniently ([`crate::parse_lenient`]; no JSON gives `""`) and written
    ///   back with Python's `json.dumps`; with `properties`, the object of each query's first result
    ///   (a query that fails or yields nothing leaves its member out).
    /// * Regex: the chosen match of the pattern (see [`RegexPattern::findall`]); no match gives `""`
    ///   when strict, else the text unchanged. Named patterns give the `json.dumps` of
    ///   `{name: result, ...}`.
    ///
    /// Fails only when a jq query is stopped (its budget, the node's deadline or a cancellation).
    pub fn apply(&self, text: &str) -> Result<String, JqFailure> {
        Ok(match self {
            OutputParser::Json { properties } => {
                let value = parse_lenient(text).unwrap_or_else(|| Json::String(String::new()));
                match properties {
                    None => py_json_dumps(&value),
                    Some(queries) => {
                        let mut out = Map::new();
                        for (member, q) in queries {
                            if let Some(v) = q.eval_first(&value)? {
                                out.insert(member.clone(), v);
                            }
                        }
                        py_json_dumps(&Json::Object(out))
                    }
                }
            }
            OutputParser::Tools(format) => format.read(text, None).map_or_else(|| text.to_owned(), |(thoughts, _)| thoughts),
            OutputParser::Regex { patterns, strict } => match patterns {
                RegexSpec::Single(p) => p.extract(text, *strict),
                RegexSpec::Named(named) => {
                    let out: Map<String, Json> =
                        named.iter().map(|(name, p)| (name.clone(), Json::String(p.extract(text, *strict)))).collect();
                    py_json_dumps(&Json::Object(out))
                }
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jq_queries() {
        let q = JqQuery::compile(".score").unwrap();
        assert_eq!(q.first(&json!({"score": 5})), Some(json!(5)));
        assert_eq!(q.first(&json!({})), Some(json!(null)));
        assert_eq!(q.first(&json!("x")), None);
        let q = JqQuery::compile(".items | map(. * 2) | .[0]").unwrap();
        assert_eq!(q.first(&json!({"items": [1.5, 2]})), Some(json!(3)));
        let q = JqQuery::compile("empty").unwrap();
        assert_eq!(q.first(&json!(1)), None);
        assert!(JqQuery::compile(".a |").is_err());
        assert!(JqQuery::compile("nosuchfn").unwrap_err().to_string().contains("nosuchfn"));
    }

    #[test]
    fn python_findall() {
        let p = RegexPattern::new(r"\d*", 0, false).unwrap();
        assert_eq!(p.findall("a12b"), ["", "12", "", ""]);
        let p = RegexPattern::new(r"(\w)=(\d)?", 0, false).unwrap();
        assert_eq!(p.findall("a=1 b="), ["('a', '1')", "('b', '')"]);
        let p = RegexPattern::new(r"(?<=\$)\d+", 0, false).unwrap();
        assert_eq!(p.findall("cost $12 or $3"), ["12", "3"]);
        let p = RegexPattern::new(r"end$", 0, false).unwrap();
        assert_eq!(p.findall("the end\n"), ["end"]);
        let p = RegexPattern::new(r"a{,2}b{x}", 0, false).unwrap();
        assert_eq!(p.findall("aab{x}"), ["aab{x}"]);
    }
}

//! Tool calls written in Python syntax (WayFlow's `PythonToolOutputParser`), read by a parser of
//! a subset of Python's expression grammar: nothing is ever evaluated.
//!
//! WayFlow parses the whole answer with `ast.parse` and collects every `Call` node, inner calls
//! before the call holding them; a positional argument becomes `arg<i>` with its source text
//! (`ast.unparse`), a keyword argument its value when it is a literal constant, else its source
//! text; `**d` becomes the key `**`. Text that is not Python gives no call at all.
//!
//! The subset read here: statements separated by newlines or `;` (expressions, tuples of them,
//! assignments), names, attributes, calls (`*args`, `**kwargs`, keywords), subscripts, string
//! literals (with `r`/`u` prefixes, triple quotes, escapes, implicit concatenation), integers and
//! floats, `True`/`False`/`None`, lists, tuples, sets, dicts (with `**`), unary `+ - ~` and the
//! arithmetic operators `+ - * / // % @ **`. Any other construct (comparisons, `and`/`or`,
//! lambdas, comprehensions, f-strings, bytes, slices, statements such as `def`) makes the whole
//! answer "not a call", as a syntax error does in WayFlow; valid Python that uses them is the one
//! place where the two differ.

use serde_json::{Map, Number, Value as Json};

use crate::pyfmt::{write_py_float, write_py_str_repr};

/// Nesting deeper than this is refused (Python refuses 200 nested parentheses).
const MAX_DEPTH: usize = 100;

/// The calls of `text`, in WayFlow's order, or `None` when the text is not (read here as)
/// Python or a call's callee is neither a name nor `name.attribute`.
pub(crate) fn calls(text: &str) -> Option<Vec<(String, Map<String, Json>)>> {
    let tokens = tokenize(text)?;
    let mut p = Parser { tokens, i: 0, depth: 0 };
    let exprs = p.module()?;
    let mut out = Vec::new();
    for e in &exprs {
        visit(e, &mut out)?;
    }
    Some(out)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    Newline,
    End,
}

const OPS: &[&str] = &[
    "**", "//", "->", ":=", "==", "!=", "<=", ">=", "<<", ">>", "+", "-", "*", "/", "%", "@", "~", "(", ")", "[", "]", "{", "}", ",", ":",
    ".", ";", "=", "<", ">", "&", "|", "^", "!",
];

const KEYWORDS: &[&str] = &[
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif", "else", "except", "finally", "for",
    "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with",
    "yield",
];

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut nesting = 0usize;
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        if line_start && nesting == 0 {
            // A logical line: blank and comment lines are skipped; indentation is an error.
            let mut j = i;
            while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\x0c') {
                j += 1;
            }
            match chars.get(j) {
                None => break,
                Some('\n' | '\r') => {
                    i = j + 1;
                    continue;
                }
                Some('#') => {
                    while j < chars.len() && chars[j] != '\n' {
                        j += 1;
                    }
                    i = j;
                    continue;
                }
                Some('\\') if matches!(chars.get(j + 1), Some('\n')) && j == i => return None,
                Some(_) if j > i => return None,
                Some(_) => {}
            }
            line_start = false;
        }
        match c {
            ' ' | '\t' | '\x0c' => i += 1,
            '\r' | '\n' => {
                i += 1;
                if nesting == 0 {
                    if out.last() != Some(&Tok::Newline) && !out.is_empty() {
                        out.push(Tok::Newline);
                    }
                    line_start = true;
                }
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '\\' => {
                // A line continuation.
                match chars.get(i + 1) {
                    Some('\n') => i += 2,
                    Some('\r') if chars.get(i + 2) == Some(&'\n') => i += 3,
                    _ => return None,
                }
            }
            c if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) => {
                let (tok, next) = number(&chars, i)?;
                out.push(tok);
                i = next;
            }
            c if c == '_' || c.is_alphabetic() => {
                let start = i;
                while i < chars.len() && (chars[i] == '_' || chars[i].is_alphanumeric()) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if matches!(chars.get(i), Some('\'' | '"')) {
                    let raw = match word.to_ascii_lowercase().as_str() {
                        "r" => true,
                        "u" => false,
                        // Bytes and f-strings are outside the subset.
                        _ => return None,
                    };
                    let (s, next) = string(&chars, i, raw)?;
                    out.push(Tok::Str(s));
                    i = next;
                } else {
                    out.push(Tok::Name(word));
                }
            }
            '\'' | '"' => {
                let (s, next) = string(&chars, i, false)?;
                out.push(Tok::Str(s));
                i = next;
            }
            _ => {
                let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
                if rest.starts_with("...") {
                    // Ellipsis is outside the subset.
                    return None;
                }
                let op = OPS.iter().find(|op| rest.starts_with(**op))?;
                match *op {
                    "(" | "[" | "{" => nesting += 1,
                    ")" | "]" | "}" => nesting = nesting.checked_sub(1)?,
                    _ => {}
                }
                out.push(Tok::Op(op));
                i += op.chars().count();
            }
        }
    }
    if nesting != 0 {
        return None;
    }
    if out.last().is_some_and(|t| *t != Tok::Newline) {
        out.push(Tok::Newline);
    }
    out.push(Tok::End);
    Some(out)
}

fn number(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut i = start;
    let radix = match (chars.get(i), chars.get(i + 1).map(char::to_ascii_lowercase)) {
        (Some('0'), Some('x')) => 16,
        (Some('0'), Some('o')) => 8,
        (Some('0'), Some('b')) => 2,
        _ => 10,
    };
    if radix != 10 {
        i += 2;
        let digits_start = i;
        while i < chars.len() && (chars[i].is_digit(radix) || chars[i] == '_') {
            i += 1;
        }
        let digits: String = chars[digits_start..i].iter().filter(|c| **c != '_').collect();
        if chars.get(i).is_some_and(|c| c.is_alphanumeric()) {
            return None;
        }
        return Some((Tok::Int(i64::from_str_radix(&digits, radix).ok()?), i));
    }
    let mut text = String::new();
    let mut float = false;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
        text.push(chars[i]);
        i += 1;
    }
    if chars.get(i) == Some(&'.') {
        float = true;
        text.push('.');
        i += 1;
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
            text.push(chars[i]);
            i += 1;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        let mut exp = String::from("e");
        if let Some(sign @ ('+' | '-')) = chars.get(j) {
            exp.push(*sign);
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '_') {
                exp.push(chars[j]);
                j += 1;
            }
            float = true;
            text.push_str(&exp);
            i = j;
        }
    }
    // `1j` (complex), `1x`: outside the subset or not Python.
    if chars.get(i).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
        return None;
    }
    if text.contains("__") || text.ends_with('_') || text.contains("_.") || text.contains("._") {
        return None;
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    if float {
        let f: f64 = clean.parse().ok()?;
        if !f.is_finite() {
            return None;
        }
        Some((Tok::Float(f), i))
    } else {
        // Python refuses leading zeros in a non-zero decimal integer.
        if clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
            return None;
        }
        Some((Tok::Int(clean.parse().ok()?), i))
    }
}

fn string(chars: &[char], start: usize, raw: bool) -> Option<(String, usize)> {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let mut i = start + if triple { 3 } else { 1 };
    let mut out = String::new();
    loop {
        let c = *chars.get(i)?;
        if c == quote {
            if !triple {
                return Some((out, i + 1));
            }
            if chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote) {
                return Some((out, i + 3));
            }
            out.push(c);
            i += 1;
            continue;
        }
        if (c == '\n' || c == '\r') && !triple {
            return None;
        }
        if c != '\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let next = *chars.get(i + 1)?;
        if raw {
            out.push('\\');
            out.push(next);
            i += 2;
            continue;
        }
        i += 2;
        match next {
            '\n' => {}
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            'x' | 'u' | 'U' => {
                let n = match next {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.get(i..i + n)?.iter().collect();
                if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                i += n;
            }
            '0'..='7' => {
                let mut v = next.to_digit(8)?;
                let mut k = 0;
                while k < 2 && chars.get(i).is_some_and(|c| c.is_digit(8)) {
                    v = v * 8 + chars[i].to_digit(8)?;
                    i += 1;
                    k += 1;
                }
                out.push(char::from_u32(v)?);
            }
            // `\N{...}` needs the Unicode names: outside the subset.
            'N' => return None,
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Const {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
}

#[derive(Debug, Clone)]
enum Expr {
    Const(Const),
    Name(String),
    Attr(Box<Expr>, String),
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        keywords: Vec<(Option<String>, Expr)>,
    },
    Starred(Box<Expr>),
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    Set(Vec<Expr>),
    /// `(key, value)`; a `None` key is `**value`.
    Dict(Vec<(Option<Expr>, Expr)>),
    Subscript(Box<Expr>, Box<Expr>),
    BinOp(&'static str, Box<Expr>, Box<Expr>),
    Unary(&'static str, Box<Expr>),
}

/// A call's keyword arguments: the name (`None` for `**value`) and the value.
type Keywords = Vec<(Option<String>, Expr)>;

struct Parser {
    tokens: Vec<Tok>,
    i: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.i).unwrap_or(&Tok::End)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.is_op(op) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, op: &str) -> Option<()> {
        self.eat(op).then_some(())
    }

    /// Statements: each an expression (or tuple), or an assignment (its targets and value, in
    /// order).
    fn module(&mut self) -> Option<Vec<Expr>> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Tok::End => return Some(out),
                Tok::Newline => {
                    self.i += 1;
                    continue;
                }
                _ => {}
            }
            loop {
                out.push(self.star_expressions()?);
                while self.eat("=") {
                    out.push(self.star_expressions()?);
                }
                if !self.eat(";") {
                    break;
                }
                if matches!(self.peek(), Tok::Newline | Tok::End) {
                    break;
                }
            }
            match self.peek() {
                Tok::Newline => self.i += 1,
                Tok::End => {}
                _ => return None,
            }
        }
    }

    /// `a`, or `a, b, ...` (a tuple).
    fn star_expressions(&mut self) -> Option<Expr> {
        let first = self.star_expression()?;
        if !self.is_op(",") {
            return Some(first);
        }
        let mut items = vec![first];
        while self.eat(",") {
            if self.ends_expression() {
                break;
            }
            items.push(self.star_expression()?);
        }
        Some(Expr::Tuple(items))
    }

    fn ends_expression(&self) -> bool {
        matches!(self.peek(), Tok::Newline | Tok::End) || [")", "]", "}", "=", ";"].iter().any(|op| self.is_op(op))
    }

    fn star_expression(&mut self) -> Option<Expr> {
        if self.eat("*") {
            return Some(Expr::Starred(Box::new(self.sum()?)));
        }
        self.expression()
    }

    fn expression(&mut self) -> Option<Expr> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let e = self.sum();
        self.depth -= 1;
        let e = e?;
        // Comparisons, boolean operators, conditional expressions, walrus, bitwise operators:
        // outside the subset.
        if let Tok::Name(n) = self.peek()
            && KEYWORDS.contains(&n.as_str())
        {
            return None;
        }
        if ["<", ">", "==", "!=", "<=", ">=", "|", "&", "^", "<<", ">>", ":=", "!", "->"].iter().any(|op| self.is_op(op)) {
            return None;
        }
        Some(e)
    }

    fn sum(&mut self) -> Option<Expr> {
        let mut left = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Op(o @ ("+" | "-")) => *o,
                _ => return Some(left),
            };
            self.i += 1;
            let right = self.term()?;
            left = Expr::BinOp(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Option<Expr> {
        let mut left = self.factor()?;
        loop {
            let op = match self.peek() {
                Tok::Op(o @ ("*" | "/" | "//" | "%" | "@")) => *o,
                _ => return Some(left),
            };
            self.i += 1;
            let right = self.factor()?;
            left = Expr::BinOp(op, Box::new(left), Box::new(right));
        }
    }

    fn factor(&mut self) -> Option<Expr> {
        if let Tok::Op(o @ ("+" | "-" | "~")) = self.peek() {
            let op = *o;
            self.i += 1;
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return None;
            }
            let operand = self.factor();
            self.depth -= 1;
            return Some(Expr::Unary(op, Box::new(operand?)));
        }
        self.power()
    }

    fn power(&mut self) -> Option<Expr> {
        let base = self.primary()?;
        if self.eat("**") {
            let exponent = self.factor()?;
            return Some(Expr::BinOp("**", Box::new(base), Box::new(exponent)));
        }
        Some(base)
    }

    fn primary(&mut self) -> Option<Expr> {
        let mut e = self.atom()?;
        loop {
            if self.eat(".") {
                let Tok::Name(n) = self.peek().clone() else { return None };
                if KEYWORDS.contains(&n.as_str()) || matches!(n.as_str(), "True" | "False" | "None") {
                    return None;
                }
                self.i += 1;
                e = Expr::Attr(Box::new(e), n);
            } else if self.eat("(") {
                let (args, keywords) = self.arguments()?;
                e = Expr::Call { func: Box::new(e), args, keywords };
            } else if self.eat("[") {
                let index = self.star_expressions()?;
                self.expect("]")?;
                e = Expr::Subscript(Box::new(e), Box::new(index));
            } else {
                return Some(e);
            }
        }
    }

    fn arguments(&mut self) -> Option<(Vec<Expr>, Keywords)> {
        let mut args = Vec::new();
        let mut keywords: Keywords = Vec::new();
        loop {
            if self.eat(")") {
                return Some((args, keywords));
            }
            if self.eat("**") {
                keywords.push((None, self.expression()?));
            } else if self.eat("*") {
                if keywords.iter().any(|(k, _)| k.is_none()) {
                    return None;
                }
                args.push(Expr::Starred(Box::new(self.expression()?)));
            } else if let (Tok::Name(n), Some(Tok::Op("="))) = (self.peek().clone(), self.tokens.get(self.i + 1)) {
                if KEYWORDS.contains(&n.as_str()) || matches!(n.as_str(), "True" | "False" | "None") {
                    return None;
                }
                self.i += 2;
                keywords.push((Some(n), self.expression()?));
            } else {
                if !keywords.is_empty() {
                    // A positional argument after a keyword one.
                    return None;
                }
                args.push(self.expression()?);
            }
            if !self.eat(",") {
                self.expect(")")?;
                return Some((args, keywords));
            }
        }
    }

    fn atom(&mut self) -> Option<Expr> {
        let tok = self.peek().clone();
        self.i += 1;
        Some(match tok {
            Tok::Name(n) => match n.as_str() {
                "True" => Expr::Const(Const::Bool(true)),
                "False" => Expr::Const(Const::Bool(false)),
                "None" => Expr::Const(Const::None),
                k if KEYWORDS.contains(&k) => return None,
                _ => Expr::Name(n),
            },
            Tok::Int(v) => Expr::Const(Const::Int(v)),
            Tok::Float(v) => Expr::Const(Const::Float(v)),
            Tok::Str(mut s) => {
                while let Tok::Str(more) = self.peek() {
                    s.push_str(more);
                    self.i += 1;
                }
                Expr::Const(Const::Str(s))
            }
            Tok::Op("(") => {
                if self.eat(")") {
                    return Some(Expr::Tuple(Vec::new()));
                }
                let first = self.star_expression()?;
                if self.eat(")") {
                    if matches!(first, Expr::Starred(_)) {
                        return None;
                    }
                    return Some(first);
                }
                let mut items = vec![first];
                while self.eat(",") {
                    if self.is_op(")") {
                        break;
                    }
                    items.push(self.star_expression()?);
                }
                self.expect(")")?;
                Expr::Tuple(items)
            }
            Tok::Op("[") => Expr::List(self.items("]")?),
            Tok::Op("{") => self.braces()?,
            _ => return None,
        })
    }

    fn items(&mut self, close: &str) -> Option<Vec<Expr>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Some(items);
            }
            items.push(self.star_expression()?);
            if !self.eat(",") {
                self.expect(close)?;
                return Some(items);
            }
        }
    }

    fn braces(&mut self) -> Option<Expr> {
        if self.eat("}") {
            return Some(Expr::Dict(Vec::new()));
        }
        // A dict when the first item is `k: v` or `**d`, else a set.
        if self.eat("**") {
            let first = self.sum()?;
            return self.dict_rest(vec![(None, first)]);
        }
        let first = self.star_expression()?;
        if self.eat(":") {
            let value = self.expression()?;
            return self.dict_rest(vec![(Some(first), value)]);
        }
        let mut items = vec![first];
        if self.eat(",") {
            items.extend(self.items("}")?);
        } else {
            self.expect("}")?;
        }
        Some(Expr::Set(items))
    }

    fn dict_rest(&mut self, mut pairs: Vec<(Option<Expr>, Expr)>) -> Option<Expr> {
        loop {
            if !self.eat(",") {
                self.expect("}")?;
                return Some(Expr::Dict(pairs));
            }
            if self.eat("}") {
                return Some(Expr::Dict(pairs));
            }
            if self.eat("**") {
                pairs.push((None, self.sum()?));
            } else {
                let key = self.expression()?;
                self.expect(":")?;
                pairs.push((Some(key), self.expression()?));
            }
        }
    }
}

/// `ast.NodeVisitor.generic_visit` order, `CallVisitor.visit_Call` at each call: the calls
/// inside a call (callee, arguments, keywords) before the call.
fn visit(e: &Expr, out: &mut Vec<(String, Map<String, Json>)>) -> Option<()> {
    match e {
        Expr::Const(_) | Expr::Name(_) => {}
        Expr::Attr(v, _) | Expr::Starred(v) | Expr::Unary(_, v) => visit(v, out)?,
        Expr::List(items) | Expr::Tuple(items) | Expr::Set(items) => {
            for item in items {
                visit(item, out)?;
            }
        }
        Expr::Dict(pairs) => {
            for k in pairs.iter().filter_map(|(k, _)| k.as_ref()) {
                visit(k, out)?;
            }
            for (_, v) in pairs {
                visit(v, out)?;
            }
        }
        Expr::Subscript(a, b) | Expr::BinOp(_, a, b) => {
            visit(a, out)?;
            visit(b, out)?;
        }
        Expr::Call { func, args, keywords } => {
            visit(func, out)?;
            for a in args {
                visit(a, out)?;
            }
            for (_, v) in keywords {
                visit(v, out)?;
            }
            let mut arguments = Map::new();
            for (i, a) in args.iter().enumerate() {
                arguments.insert(format!("arg{i}"), Json::String(unparse(a)));
            }
            for (k, v) in keywords {
                let value = match v {
                    Expr::Const(c) => constant(c),
                    other => Json::String(unparse(other)),
                };
                arguments.insert(k.clone().unwrap_or_else(|| "**".to_owned()), value);
            }
            let name = match &**func {
                Expr::Name(n) => n.clone(),
                Expr::Attr(value, attr) => match &**value {
                    Expr::Name(n) => format!("{n}.{attr}"),
                    // `getattr(node.func.value, 'id')` raises: the whole answer is no call.
                    _ => return None,
                },
                _ => return None,
            };
            out.push((name, arguments));
        }
    }
    Some(())
}

fn constant(c: &Const) -> Json {
    match c {
        Const::Str(s) => Json::String(s.clone()),
        Const::Int(i) => Json::Number((*i).into()),
        Const::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Const::Bool(b) => Json::Bool(*b),
        Const::None => Json::Null,
    }
}

/// Python's `_Precedence` levels used here.
const TUPLE: u8 = 1;
const TEST: u8 = 3;
const EXPR: u8 = 8;
const ARITH: u8 = 13;
const TERM: u8 = 14;
const FACTOR: u8 = 15;
const POWER: u8 = 16;
const ATOM: u8 = 18;

/// `ast.unparse(e)` of an argument.
fn unparse(e: &Expr) -> String {
    let mut out = String::new();
    write(&mut out, e, TEST);
    out
}

fn write(out: &mut String, e: &Expr, ctx: u8) {
    match e {
        Expr::Const(c) => match c {
            Const::Str(s) => write_py_str_repr(out, s),
            Const::Int(i) => out.push_str(&i.to_string()),
            Const::Float(f) => write_py_float(out, *f),
            Const::Bool(true) => out.push_str("True"),
            Const::Bool(false) => out.push_str("False"),
            Const::None => out.push_str("None"),
        },
        Expr::Name(n) => out.push_str(n),
        Expr::Attr(v, attr) => {
            write(out, v, ATOM);
            if matches!(&**v, Expr::Const(Const::Int(_))) {
                out.push(' ');
            }
            out.push('.');
            out.push_str(attr);
        }
        Expr::Call { func, args, keywords } => {
            write(out, func, ATOM);
            out.push('(');
            let mut first = true;
            for a in args {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                write(out, a, TEST);
            }
            for (k, v) in keywords {
                if !first {
                    out.push_str(", ");
                }
                first = false;
                match k {
                    Some(k) => {
                        out.push_str(k);
                        out.push('=');
                    }
                    None => out.push_str("**"),
                }
                write(out, v, TEST);
            }
            out.push(')');
        }
        Expr::Starred(v) => {
            out.push('*');
            write(out, v, EXPR);
        }
        Expr::List(items) => {
            out.push('[');
            write_items(out, items, false);
            out.push(']');
        }
        Expr::Set(items) => {
            out.push('{');
            write_items(out, items, false);
            out.push('}');
        }
        Expr::Tuple(items) => {
            let parens = items.is_empty() || ctx > TUPLE;
            if parens {
                out.push('(');
            }
            write_items(out, items, true);
            if parens {
                out.push(')');
            }
        }
        Expr::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match k {
                    Some(k) => {
                        write(out, k, TEST);
                        out.push_str(": ");
                        write(out, v, TEST);
                    }
                    None => {
                        out.push_str("**");
                        write(out, v, EXPR);
                    }
                }
            }
            out.push('}');
        }
        Expr::Subscript(v, index) => {
            write(out, v, ATOM);
            out.push('[');
            match &**index {
                Expr::Tuple(items) if !items.is_empty() => write_items(out, items, true),
                other => write(out, other, TEST),
            }
            out.push(']');
        }
        Expr::BinOp(op, l, r) => {
            let prec = match *op {
                "+" | "-" => ARITH,
                "**" => POWER,
                _ => TERM,
            };
            let (lp, rp) = if *op == "**" { (prec + 1, prec) } else { (prec, prec + 1) };
            let parens = ctx > prec;
            if parens {
                out.push('(');
            }
            write(out, l, lp);
            out.push(' ');
            out.push_str(op);
            out.push(' ');
            write(out, r, rp);
            if parens {
                out.push(')');
            }
        }
        Expr::Unary(op, v) => {
            let parens = ctx > FACTOR;
            if parens {
                out.push('(');
            }
            out.push_str(op);
            write(out, v, FACTOR);
            if parens {
                out.push(')');
            }
        }
    }
}

/// `items_view`: items joined by `, `; a single item of a tuple with a trailing comma.
fn write_items(out: &mut String, items: &[Expr], tuple: bool) {
    if tuple && items.len() == 1 {
        write(out, &items[0], TEST);
        out.push(',');
        return;
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write(out, item, TEST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Option<Json> {
        calls(text).map(|c| Json::Array(c.into_iter().map(|(n, a)| json!([n, a])).collect()))
    }

    #[test]
    fn reads_calls_in_wayflows_order() {
        assert_eq!(read("f(g(x=1), y=h())\n"), Some(json!([["g", {"x": 1}], ["h", {}], ["f", {"arg0": "g(x=1)", "y": "h()"}]])));
        assert_eq!(
            read("a.b(1, 'x', *r, k=[1, (2,)], **kw)"),
            Some(json!([["a.b", {"arg0": "1", "arg1": "'x'", "arg2": "*r", "k": "[1, (2,)]", "**": "kw"}]]))
        );
        assert_eq!(
            read("f(x=-1, y=2 ** -1, z=(1 + 2) * 3, s=\"it's\")"),
            Some(json!([["f", {"x": "-1", "y": "2 ** (-1)", "z": "(1 + 2) * 3", "s": "it's"}]]))
        );
    }

    #[test]
    fn text_that_is_not_python_is_no_call() {
        assert_eq!(read("The time is 12:00."), None);
        assert_eq!(read("  f()"), None);
        assert_eq!(read("a.b.c()"), None);
        assert_eq!(read("f(x for x in y)"), None);
        assert_eq!(read(""), Some(json!([])));
        assert_eq!(read("x = 1; # nothing"), Some(json!([])));
    }
}

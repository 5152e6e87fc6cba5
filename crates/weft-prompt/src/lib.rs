//! Prompts and replies as WayFlow does them.
//!
//! Weft runs Open Agent Spec flows and must behave like WayFlow, the Python reference runtime.
//! This crate holds the parts of an LLM node that are about text, independent of any transport:
//!
//! * **Python formatting** ([`py_json_dumps`], [`py_str`], [`cast_to_input`]): values reach
//!   templates through WayFlow's cast to the input's declared type and Python's `str()`
//!   (FORMAT.md 8.1, "Rendering values into templates").
//! * **Templates** ([`Template`]): Jinja compiled once and rendered many times, with Jinja2's
//!   defaults as WayFlow configures them (strict undefined, no auto-escape, trailing newline
//!   removed) and Python's `str()` for printed values.
//! * **Structured output in the prompt** (FORMAT 8.1: [`structured_output_needed`],
//!   [`prompt_schema`], [`prompt_suffix`], [`extract_final_answer`], [`parse_lenient`],
//!   [`outputs_from_answer`], [`outputs_from_answer_coerced`], [`coerce`]).
//! * **Native structured output** of a prompt template object (FORMAT 11.1: [`native_schema`],
//!   [`template_output`], [`template_reply`]) and the **output parsers** ([`OutputParser`]),
//!   the tool output parsers among them ([`ToolCallFormat`]: calls written in the text, a Python
//!   call read by a parser that never evaluates anything).
//!
//! Schemas are always taken as WayFlow reads them: through its `Property` model, which drops
//! keywords it does not know and orders the rest its own way, so the schema text in a prompt or a
//! request is byte for byte WayFlow's.
//!
//! An LlmNode in structured prompt mode, end to end:
//!
//! ```
//! use serde_json::json;
//! use weft_prompt::{cast_to_input, outputs_from_answer_coerced, prompt_schema, prompt_template_with_suffix, structured_output_needed, Template};
//!
//! let outputs = [json!({"title": "score", "type": "integer"}), json!({"title": "summary", "type": "string", "default": "none"})];
//! assert!(structured_output_needed(&outputs));
//! let (schema, _shape) = prompt_schema(&outputs);
//! let template = Template::new(&prompt_template_with_suffix("Rate {{ text }}", &schema)).unwrap();
//! let mut vars = serde_json::Map::new();
//! vars.insert("text".into(), cast_to_input(json!({"a": 1}), &json!({"type": "string"})));
//! let prompt = template.render(&vars).unwrap();
//! assert!(prompt.starts_with("Rate {\"a\": 1}\n\n\n## Additional instructions: \nAt the end of your answer"));
//!
//! let answer = "Fine. <final_answer>{\"score\": 4}</final_answer>";
//! let values = outputs_from_answer_coerced(answer, &outputs);
//! assert_eq!(values["score"], json!(4));
//! assert_eq!(values["summary"], json!("")); // several outputs: a missing member arrives as null
//! ```

mod jq;
mod lenient;
mod parsers;
mod pycall;
mod pyfmt;
mod schema;
mod structured;
mod template;
mod toolcalls;

pub use jq::{First, Interrupt, JqError, JqFailure, JqLimits, JqQuery, MAX_QUERY_BYTES, with_interrupt};
pub use lenient::{parse_lenient, truthy as py_truthy};
pub use parsers::{ASCII, DOTALL, IGNORECASE, MULTILINE, OutputParser, ParserError, RegexPattern, RegexSpec, VERBOSE};
pub use pyfmt::{py_eq, py_json_dumps, py_json_dumps_indent, py_str};
pub use schema::{InputCast, PyProperty, cast_to_input, default_or_zero};
pub use structured::{
    ADDITIONAL_INSTRUCTIONS_HEADER, AnswerReader, JSON_CONSTRAINED_GENERATION_PROMPT, ReplyError, Shape, coerce, extract_final_answer,
    native_schema, outputs_from_answer, outputs_from_answer_coerced, prompt_schema, prompt_suffix, prompt_template_with_suffix,
    strict_submission, structured_output_needed, template_output, template_reply,
};
pub use template::{FUEL, Template, TemplateError};
pub use toolcalls::{OfferedTool, TextCall, ToolCallFormat, calls_of, remove_optional, wayflow_schema};

//! Native async Rust functions as tools.
//!
//! [`native`] wraps `async fn(A) -> Result<R, E>` into a [`NativeTool`]:
//!
//! - the arguments object is deserialized into `A` (usually a struct whose fields are the
//!   tool's inputs, keyed by input title). When it does not fit, the call fails with
//!   [`ToolError::Failed`] naming the bad argument (`argument `n`: invalid type: string "x",
//!   expected u32`) or the missing one (`missing field `city``). `Failed` rather than
//!   `BadOutput`: the tool never ran, and `BadOutput` is about what a tool answers;
//! - an `Err(e)` of the function becomes [`ToolError::Failed`] with `e.to_string()` as message;
//! - the `Ok(r)` value is serialized into the JSON result; a value that cannot be serialized
//!   (a map with non-string keys, say) is a [`ToolError::BadOutput`].
//!
//! [`NativeTool::parameters_schema`] is the JSON Schema (draft 2020-12, by `schemars`) of `A`.
//!
//! ```
//! use weft_tools::ToolRegistry;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Args {
//!     /// The city to look up.
//!     city: String,
//! }
//!
//! let mut registry = ToolRegistry::new();
//! registry.register_fn("weather", |args: Args| async move {
//!     Ok::<_, std::io::Error>(format!("sunny in {}", args.city))
//! });
//! assert!(registry.contains("weather"));
//! ```

use crate::{Tool, ToolError};
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde_json::{Map, Value as Json};
use std::fmt::{self, Display};
use std::future::Future;
use std::pin::Pin;

type BoxFuture = Pin<Box<dyn Future<Output = Result<Json, ToolError>> + Send + 'static>>;
type CallFn = Box<dyn Fn(Map<String, Json>) -> BoxFuture + Send + Sync>;

/// A native async Rust function bound as a tool; see [`native`].
pub struct NativeTool {
    schema: Json,
    args_type: &'static str,
    call: CallFn,
}

impl fmt::Debug for NativeTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NativeTool").field("args_type", &self.args_type).finish_non_exhaustive()
    }
}

/// Wraps an async function taking its arguments as `A` into a tool.
///
/// `A` is deserialized from the arguments object; `R` is serialized into the result; an
/// `Err(E)` becomes [`ToolError::Failed`] with `E`'s message. See the [module docs](self).
pub fn native<A, R, E, F, Fut>(f: F) -> NativeTool
where
    A: DeserializeOwned + schemars::JsonSchema + 'static,
    R: serde::Serialize + 'static,
    E: Display + 'static,
    F: Fn(A) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
{
    let schema = schemars::SchemaGenerator::new(schemars::generate::SchemaSettings::draft2020_12()).into_root_schema_for::<A>().to_value();
    let call: CallFn = Box::new(move |args| match A::deserialize(Args(args)) {
        Err(e) => {
            Box::pin(std::future::ready(Err(ToolError::Failed { message: format!("the arguments do not fit the tool's parameters: {e}") })))
        }
        Ok(args) => {
            let running = f(args);
            Box::pin(async move {
                let value = running.await.map_err(|e| ToolError::Failed { message: e.to_string() })?;
                serde_json::to_value(value)
                    .map_err(|e| ToolError::BadOutput { message: format!("the tool's result cannot be represented as JSON: {e}") })
            })
        }
    });
    NativeTool { schema, args_type: std::any::type_name::<A>(), call }
}

impl NativeTool {
    /// The JSON Schema (draft 2020-12) of the arguments type `A`.
    pub fn parameters_schema(&self) -> &Json {
        &self.schema
    }
}

#[async_trait::async_trait]
impl Tool for NativeTool {
    async fn call(&self, args: Map<String, Json>) -> Result<Json, ToolError> {
        (self.call)(args).await
    }
}

/// The arguments object as a deserializer that names the argument whose value does not fit.
struct Args(Map<String, Json>);

impl<'de> de::Deserializer<'de> for Args {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(ArgsAccess { entries: self.0.into_iter(), pending: None })
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// `()` (or a unit struct) takes no arguments.
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0.keys().next() {
            None => visitor.visit_unit(),
            Some(key) => Err(de::Error::custom(format!("the tool takes no arguments, found `{key}`"))),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        seq tuple tuple_struct map struct enum identifier
    }
}

struct ArgsAccess {
    entries: serde_json::map::IntoIter,
    pending: Option<(String, Json)>,
}

impl<'de> MapAccess<'de> for ArgsAccess {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        let parsed = seed.deserialize(key.as_str().into_deserializer())?;
        self.pending = Some((key, value));
        Ok(Some(parsed))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Self::Error> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("an argument value was asked for before its name"));
        };
        seed.deserialize(value).map_err(|e| de::Error::custom(format!("argument `{key}`: {e}")))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

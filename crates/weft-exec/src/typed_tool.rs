//! Typed tools in one call: [`TypedTools::tool_fn`] binds an async Rust function in a
//! [`ToolRegistry`] and returns the [`ServerTool`] that declares it to an agent or a tool
//! node, both derived from the function's own types, so the declaration and the function
//! cannot disagree.
//!
//! It lives here because it needs both sides: the declaration is `weft_flow`'s
//! ([`ServerTool::typed`]), the binding `weft_tools`' ([`ToolRegistry::register_fn`]), and
//! neither crate depends on the other.
//!
//! ```
//! use weft_exec::TypedTools;
//! use weft_flow::builder::{AgentBuilder, LlmConfig};
//! use weft_tools::ToolRegistry;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Query {
//!     /// The city to look up
//!     city: String,
//! }
//!
//! async fn weather(q: Query) -> Result<String, String> {
//!     Ok(format!("sunny in {}", q.city))
//! }
//!
//! let mut tools = ToolRegistry::new();
//! let weather = tools.tool_fn("weather", "The weather in a city", "forecast", weather);
//! assert!(tools.contains("weather"));
//! assert_eq!(weather.inputs[0].title(), "city");
//! let llm = LlmConfig::openai_compatible("llm", "http://localhost:8000/v1", "qwen3");
//! let agent = AgentBuilder::new("forecaster", &llm, "You give forecasts.").tool(&weather);
//! assert!(agent.build().is_ok());
//! ```

use std::fmt::Display;
use std::future::Future;
use weft_flow::builder::ServerTool;
use weft_tools::ToolRegistry;

/// Declares and binds typed async Rust tools in one call; implemented by [`ToolRegistry`].
pub trait TypedTools {
    /// Binds `name` to the async function `f` (its arguments deserialized into `A`, its
    /// `Ok(R)` the result, its `Err(E)` a failure whose message the agent reads) and returns
    /// the `ServerTool` declaring it: one input per field of the struct `A` (its doc comments
    /// as descriptions), one output titled `output` with `R`'s schema. `A` must be a struct
    /// with named fields, or `()` for a tool without inputs.
    fn tool_fn<A, R, E, F, Fut>(&mut self, name: &str, description: &str, output: &str, f: F) -> ServerTool
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
        R: serde::Serialize + schemars::JsonSchema + 'static,
        E: Display + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static;
}

impl TypedTools for ToolRegistry {
    fn tool_fn<A, R, E, F, Fut>(&mut self, name: &str, description: &str, output: &str, f: F) -> ServerTool
    where
        A: serde::de::DeserializeOwned + schemars::JsonSchema + 'static,
        R: serde::Serialize + schemars::JsonSchema + 'static,
        E: Display + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.register_fn(name, f);
        ServerTool::typed::<A, R>(name, description, output)
    }
}

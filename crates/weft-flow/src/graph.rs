//! Mermaid flowcharts of flows (`weft graph`).

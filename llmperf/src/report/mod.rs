//! Reports: what people read after a run.
//!
//! Terminal output lives here now; machine formats and HTML join it later.

pub mod charts;
pub mod comparison;
pub mod export;
pub mod html;
pub mod reporter;
pub mod stdout;
pub mod terminal;

//! Wire formats spoken by more than one endpoint kind, kept once.
//!
//! [`tgi`]: Hugging Face TGI's `generate_stream` request body and its
//! token events, which reach llmperf over TGI's own route
//! ([`tgi`](super::tgi) kind) and, with LMI's JSON lines, inside
//! SageMaker's event stream ([`sagemaker`](super::sagemaker) kind).

pub mod tgi;

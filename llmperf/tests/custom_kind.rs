//! A protocol defined outside llmperf, registered through inventory, is
//! selectable by name like the built-in kinds.

use std::time::Duration;

use llmperf::endpoint::openai::OpenAiChat;
use llmperf::endpoint::{About, EndpointKind, Registration, RequestError, StreamDecoder, Target};
use llmperf::workload::RequestPlan;
use llmperf::{Benchmark, Endpoint, Load, Script, Workload};

/// An in-house gateway that speaks OpenAI chat but wants its own header.
struct Gateway;

llmperf::inventory::submit! { Registration::new(&Gateway) }

impl EndpointKind for Gateway {
    fn about(&self) -> About {
        About::new("in-house-gateway", "an in-house gateway (test)")
    }

    fn build_request(
        &self,
        client: &llmperf::reqwest::Client,
        target: &Target,
        plan: &RequestPlan,
    ) -> Result<llmperf::reqwest::RequestBuilder, RequestError> {
        Ok(OpenAiChat
            .build_request(client, target, plan)?
            .header("x-gateway-tenant", "bench"))
    }

    fn decoder(&self) -> Box<dyn StreamDecoder> {
        OpenAiChat.decoder()
    }
}

#[test]
fn a_kind_from_another_crate_is_listed_and_runs_by_name() {
    let names: Vec<&str> = llmperf::endpoint::kinds().map(|k| k.name()).collect();
    assert!(names.contains(&"in-house-gateway"), "{names:?}");
    let bench = Benchmark::new()
        .endpoint(Endpoint::kind("in-house-gateway").builtin())
        .workload(Workload::token_lengths(30, 0, 10, 0))
        .load(Load::closed(2).requests(4))
        .builtin_script(
            Script::new()
                .ttft(Duration::from_millis(20))
                .inter_token(Duration::from_millis(2)),
        )
        // Exact planned lengths: no validation line, whose room could raise them.
        .validate(false);
    let outcome = llmperf::run::run_benchmark("custom", &bench, &Default::default()).unwrap();
    assert_eq!(outcome.summary.config.endpoint_kind, "in-house-gateway");
    assert_eq!(outcome.summary.summary.requests.completed, 4);
    assert!(outcome.records.iter().all(|r| r.output_tokens() == 10));
}

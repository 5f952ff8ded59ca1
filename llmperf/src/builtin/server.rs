//! The HTTP side: accepting connections, routing, and turning a generation
//! request into a planned, scheduled response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::body::ResponseBody;
use super::connection::{ConnectionState, Refused, CLOSE_DELAY};
use super::metrics;
use super::openai;
use super::protocol::{self, bearer_check, json_response, openai_error as error, Protocol};
use super::request::DEFAULT_MODEL;
use super::state::{Admission, State, Waiting};
use super::timeline::Timeline;
use super::Connections;
use crate::spec::Fault;
use crate::validate::Task;

/// Largest request body read; a bigger one gets 413.
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Accepts connections until `shutdown` fires or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Events are small writes that must leave when due, not
                    // wait for Nagle to coalesce them with the next one.
                    let _ = stream.set_nodelay(true);
                    state.count_connection();
                    let state = Arc::clone(&state);
                    tokio::spawn(async move {
                        let mode = state.script.connections;
                        let connection = Arc::new(ConnectionState::default());
                        let watched = Arc::clone(&connection);
                        let service = service_fn(move |request| {
                            let state = Arc::clone(&state);
                            let connection = Arc::clone(&connection);
                            async move {
                                if connection.refuses(mode) {
                                    // hyper closes the connection unanswered.
                                    state.count_refused();
                                    return Err(Refused);
                                }
                                let mut response = route(request, state).await;
                                connection.answered(mode, response.headers_mut());
                                response.body_mut().on_connection(connection);
                                Ok(response)
                            }
                        });
                        let mut builder = http1::Builder::new();
                        builder.timer(TokioTimer::new());
                        // A connection error (client gone, injected abort)
                        // concerns only that connection.
                        let served = builder.serve_connection(TokioIo::new(stream), service);
                        let mut served = std::pin::pin!(served);
                        if mode != Connections::CloseAfterResponse {
                            let _ = served.await;
                            return;
                        }
                        // Close shortly after the first response ends,
                        // whatever its headers promised.
                        tokio::select! {
                            _ = served.as_mut() => return,
                            _ = watched.response_ended() => {}
                        }
                        tokio::select! {
                            _ = served.as_mut() => return,
                            _ = tokio::time::sleep(CLOSE_DELAY) => {}
                        }
                        served.as_mut().graceful_shutdown();
                        let _ = served.await;
                    });
                }
                // E.g. out of file descriptors: back off rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
}

async fn route(request: Request<Incoming>, state: Arc<State>) -> Response<ResponseBody> {
    let (head, body) = request.into_parts();
    let full = head.uri.path();
    let path = full
        .strip_prefix("/v1")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(full)
        .trim_end_matches('/');
    if let Some(protocol) = protocol::route(&head, path) {
        return generation(protocol, head, body, state).await;
    }
    let method = &head.method;
    match (path, method) {
        ("/models", &Method::GET) => match bearer_check(&head, &state) {
            Some(response) => response,
            None => {
                let model = state.model().unwrap_or_else(|| DEFAULT_MODEL.to_string());
                json_response(StatusCode::OK, openai::models_body(&model, 0))
            }
        },
        ("/builtin/stats", &Method::GET) => match serde_json::to_vec(&state.stats()) {
            Ok(body) => json_response(StatusCode::OK, Bytes::from(body)),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                "server_error",
                Value::Null,
            ),
        },
        ("/health", &Method::GET) => {
            json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
        }
        // As vLLM's, open without the API key.
        ("/metrics", &Method::GET) if full == "/metrics" => metrics::response(&state),
        ("/chat/completions" | "/completions" | "/models" | "/health", _) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("method {method} is not allowed on {full}"),
            "invalid_request_error",
            Value::Null,
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            &format!(
                "unknown route {method} {full} (the built-in endpoint serves POST /v1/chat/completions, \
                 POST /v1/completions, POST /generate_stream, POST /inference, POST /v1/messages, \
                 POST /endpoints/NAME/invocations-response-stream, Vertex AI paths, \
                 GET /v1/models, GET /v1/builtin/stats, GET /health, GET /metrics)"
            ),
            "invalid_request_error",
            json!("unknown_url"),
        ),
    }
}

/// A generation request, from arrival to the start of its scheduled body.
async fn generation(
    protocol: &'static dyn Protocol,
    head: hyper::http::request::Parts,
    body: Incoming,
    state: Arc<State>,
) -> Response<ResponseBody> {
    let index = state.next_request();
    if let Some(response) = protocol.check_head(&head, &state) {
        return response;
    }
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(problem) => {
            let too_large = problem.is::<http_body_util::LengthLimitError>();
            return if too_large {
                error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                    "invalid_request_error",
                    Value::Null,
                )
            } else {
                error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read request body: {problem}"),
                    "invalid_request_error",
                    Value::Null,
                )
            };
        }
    };
    if let Some(response) = protocol.check_body(&head, &body) {
        return response;
    }
    let arrived = Instant::now();
    // Parsing, tokenizing and formatting are CPU work: done on the blocking
    // pool so the few runtime workers keep other streams on time.
    let prepared = {
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || prepare(protocol, &body, index, &state)).await
    };
    let timeline = match prepared {
        Ok(Ok(timeline)) => timeline,
        Ok(Err(response)) => return *response,
        Err(_) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the built-in endpoint failed to plan this response",
                "server_error",
                Value::Null,
            )
        }
    };
    let (permit, admitted) = admit(&state, arrived).await;
    let slot = state.enter(
        permit,
        Admission {
            arrived,
            admitted,
            prompt_tokens: timeline.accounting.prompt_tokens,
        },
    );
    if !timeline.head_at.is_zero() {
        state.pacer.sleep_until(admitted + timeline.head_at).await;
    }
    let (status, content_type) = (timeline.status, timeline.content_type);
    let mut response = Response::new(ResponseBody::scripted(
        admitted,
        timeline,
        slot,
        state.pacer.clone(),
    ));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if content_type == "text/event-stream" {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

/// Everything about a generation request that needs no waiting: parse,
/// validation task, fault, and the planned response. `Err` is an immediate
/// answer (bad request, injected status).
fn prepare(
    protocol: &dyn Protocol,
    body: &[u8],
    index: u64,
    state: &State,
) -> Result<Timeline, Box<Response<ResponseBody>>> {
    let mut request = protocol.parse(body).map_err(|message| {
        Box::new(protocol.error(
            StatusCode::BAD_REQUEST,
            &message,
            "invalid_request_error",
            Value::Null,
        ))
    })?;
    if state.script.omit_usage {
        request.include_usage = false;
    }
    state.remember_model(&request.model);
    let task = Task::parse(&request.prompt);
    let fault = state.pick_fault(index, |fault| {
        protocol::applies(protocol, fault, &request, task.is_some())
    });
    if let Some(Fault::Status(code)) = fault {
        return Err(Box::new(protocol.status_fault(code)));
    }
    let answered = task.as_ref().map(|task| match fault {
        Some(Fault::CrossOver) => Task {
            number: state.crossover_number(index, task.number),
            ..task.clone()
        },
        _ => task.clone(),
    });
    if let Some(task) = &task {
        state.remember_task(index, task.number);
    }
    Ok(protocol::plan(
        &state.script,
        protocol,
        &request,
        answered,
        fault,
        index,
    ))
}

/// Waits for a concurrency slot. Admission is the arrival instant when a
/// slot is free at once (so planning time is inside the scripted TTFT), or
/// the instant a slot frees up (so TTFT includes the queueing).
async fn admit(state: &State, arrived: Instant) -> (Option<OwnedSemaphorePermit>, Instant) {
    let Some(slots) = &state.slots else {
        return (None, arrived);
    };
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        return (Some(permit), arrived);
    }
    // Counted as waiting until the permit comes, or the client goes away.
    let waiting = Waiting::new(&state.served);
    // The semaphore is never closed, so this waits for a permit.
    let permit = Arc::clone(slots).acquire_owned().await.ok();
    drop(waiting);
    (permit, Instant::now())
}

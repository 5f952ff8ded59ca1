//! The HTTP side: accepting connections, routing, and turning a generation
//! request into a planned, scheduled response.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::body::ResponseBody;
use super::connection::{ConnectionState, Refused, CLOSE_DELAY};
use super::openai;
use super::plan::{self, Timeline};
use super::request::{self, Api, DEFAULT_MODEL};
use super::sagemaker;
use super::state::State;
use super::tgi;
use super::Connections;
use super::{anthropic, azure};
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
                                connection.answered(mode, &mut response);
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
    let full = request.uri().path();
    let path = full
        .strip_prefix("/v1")
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(full)
        .trim_end_matches('/');
    let method = request.method().clone();
    // Vertex AI paths (builtin/vertex.rs).
    if let Some(api) = super::vertex::route(path, request.uri().query(), &method) {
        return generation(api, unauthorized, request, state).await;
    }
    match (path, &method) {
        ("/chat/completions", &Method::POST) => {
            generation(Api::Chat, unauthorized, request, state).await
        }
        ("/completions", &Method::POST) => {
            generation(Api::Completions, unauthorized, request, state).await
        }
        // Other protocols' routes (each checks its own way of sending the key).
        (path, &Method::POST) if azure::is_chat_path(path) => {
            generation(Api::Chat, azure::check, request, state).await
        }
        ("/generate_stream", &Method::POST) => {
            generation(Api::Tgi, unauthorized, request, state).await
        }
        ("/inference", &Method::POST) => {
            generation(Api::TogetherInference, unauthorized, request, state).await
        }
        ("/messages", &Method::POST) => {
            generation(Api::Anthropic, anthropic::check, request, state).await
        }
        ("/models", &Method::GET) => match unauthorized(&request, &state) {
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
        (path, &Method::POST) if sagemaker::is_invocation_path(path) => {
            // Checked by its signature once the body is read.
            generation(sagemaker::api(&request), unauthorized, request, state).await
        }
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
                 GET /v1/models, GET /v1/builtin/stats, GET /health)"
            ),
            "invalid_request_error",
            json!("unknown_url"),
        ),
    }
}

/// What a route checks before reading the body (the key, in the
/// protocol's own header): `Some` is the answer that refuses the request.
type RequestCheck = fn(&Request<Incoming>, &State) -> Option<Response<ResponseBody>>;

/// A generation request, from arrival to the start of its scheduled body.
async fn generation(
    api: Api,
    check: RequestCheck,
    request: Request<Incoming>,
    state: Arc<State>,
) -> Response<ResponseBody> {
    let index = state.next_request();
    // SageMaker authenticates with a SigV4 signature over the body, checked
    // once the body is read; the other routes check their key header now.
    let signed = matches!(api, Api::SageMaker { .. }).then(|| sagemaker::SignedParts::of(&request));
    if signed.is_none() {
        if let Some(response) = check(&request, &state) {
            return response;
        }
    }
    let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
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
    if let Some(signed) = &signed {
        if let Err(response) = signed.verify(&body) {
            return *response;
        }
    }
    let arrived = Instant::now();
    // Parsing, tokenizing and formatting are CPU work: done on the blocking
    // pool so the few runtime workers keep other streams on time.
    let prepared = {
        let state = Arc::clone(&state);
        tokio::task::spawn_blocking(move || prepare(api, &body, index, &state)).await
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
    let slot = state.enter(permit);
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
    api: Api,
    body: &[u8],
    index: u64,
    state: &State,
) -> Result<Timeline, Box<Response<ResponseBody>>> {
    let mut request = request::parse(api, body).map_err(|message| {
        Box::new(api_error(
            api,
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
        plan::applies(fault, api, &request, task.is_some())
    });
    if let Some(Fault::Status(code)) = fault {
        return Err(Box::new(match api {
            Api::SageMaker { .. } => sagemaker::status_fault(code),
            _ => status_fault(api, code),
        }));
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
    Ok(plan::plan(
        &state.script,
        api,
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
    // The semaphore is never closed, so this waits for a permit.
    let permit = Arc::clone(slots).acquire_owned().await.ok();
    (permit, Instant::now())
}

/// The 401 answer when the script requires a key the request lacks.
fn unauthorized<B>(request: &Request<B>, state: &State) -> Option<Response<ResponseBody>> {
    let key = state.script.api_key.as_deref()?;
    let given = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    if given == Some(key) {
        return None;
    }
    Some(error(
        StatusCode::UNAUTHORIZED,
        "Incorrect API key provided (the built-in endpoint requires `Authorization: Bearer <key>` with the scripted key)",
        "invalid_request_error",
        json!("invalid_api_key"),
    ))
}

/// The answer of an injected [`Fault::Status`].
fn status_fault(api: Api, code: u16) -> Response<ResponseBody> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    let mut response = api_error(
        api,
        status,
        &format!("injected fault: HTTP {}", status.as_u16()),
        kind,
        json!(status.as_u16()),
    );
    if status == StatusCode::TOO_MANY_REQUESTS {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An error answer in `api`'s own shape (OpenAI's `kind` and `code` are
/// mapped to the protocol's error type where it has one).
fn api_error(
    api: Api,
    status: StatusCode,
    message: &str,
    kind: &str,
    code: Value,
) -> Response<ResponseBody> {
    match api {
        Api::Chat
        | Api::Completions
        | Api::TogetherInference
        | Api::SageMaker { .. }
        | Api::Vertex(_) => error(status, message, kind, code),
        Api::Anthropic => anthropic::error(status, message),
        Api::Tgi => {
            let error_type = match status.as_u16() {
                400 | 422 => "validation",
                429 => "overloaded",
                _ => "generation",
            };
            json_response(status, tgi::error_body(message, error_type))
        }
    }
}

fn error(status: StatusCode, message: &str, kind: &str, code: Value) -> Response<ResponseBody> {
    json_response(status, openai::error_body(message, kind, code))
}

fn json_response(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::now(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

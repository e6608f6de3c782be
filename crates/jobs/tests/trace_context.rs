//! The trace context crossing from an enqueue to the job's run (the `opentelemetry` feature),
//! as an application sees it: spans exported through `tracing-opentelemetry` and the
//! OpenTelemetry SDK to an exporter that keeps them in memory. A test binary of its own
//! (`required-features`), with its own subscriber per test.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobs::{
    Clock, EnqueueOptions, JobArgs, JobContext, JobError, JobId, MemoryStore, Pool, Worker,
};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Serialize, Deserialize)]
struct Ok1;
impl JobArgs for Ok1 {
    const KIND: &'static str = "ok";
}
struct Succeeds;
impl Worker for Succeeds {
    type Args = Ok1;
    async fn perform(&self, _: JobContext, _: Ok1) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        Ok(())
    }
}

/// Keeps every exported span. (The SDK's own `InMemorySpanExporter` needs its `testing`
/// feature, which builds its metrics and logs SDKs too.)
#[derive(Clone, Debug, Default)]
struct InMemorySpanExporter(Arc<Mutex<Vec<SpanData>>>);

impl InMemorySpanExporter {
    fn get_finished_spans(&self) -> Result<Vec<SpanData>, std::convert::Infallible> {
        Ok(self.0.lock().unwrap().clone())
    }
}

impl SpanExporter for InMemorySpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

/// A subscriber exporting every span to an in-memory exporter, installed for this thread
/// (the tests' runtime is current-thread, so the pool's tasks run under it too).
fn traced() -> (InMemorySpanExporter, tracing::subscriber::DefaultGuard) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("jobs-test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    (exporter, tracing::subscriber::set_default(subscriber))
}

async fn run_to_end(pool: &Pool, id: JobId) {
    pool.client()
        .wait_for(id, Duration::from_secs(60))
        .await
        .expect("the job finishes");
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no {name:?} span among {spans:#?}"))
}

/// A job enqueued inside a span (a request) runs in a `job` span of the same trace, whose
/// parent is the enqueuing span; the context travels in the job's metadata as W3C
/// `traceparent`.
#[tokio::test(start_paused = true)]
async fn a_run_continues_the_trace_of_its_enqueue() {
    let (exporter, _guard) = traced();
    let pool = Pool::builder(Arc::new(MemoryStore::new()))
        .clock(Clock::tokio())
        .register(Succeeds)
        .start()
        .await
        .unwrap();
    let client = pool.client().clone();
    let id = async move { client.enqueue(&Ok1).await }
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    run_to_end(&pool, id).await;
    assert!(pool.shutdown().await.clean);

    let spans = exporter.get_finished_spans().unwrap();
    let request = named(&spans, "request");
    let job = named(&spans, "job");
    assert_eq!(
        job.span_context.trace_id(),
        request.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(
        job.parent_span_id,
        request.span_context.span_id(),
        "the enqueuing span is the run's parent"
    );
    let stored = pool.client().job(id).await.unwrap().unwrap();
    let traceparent = stored.metadata.get("traceparent").expect("stored");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            request.span_context.trace_id(),
            request.span_context.span_id()
        )
    );
}

/// A job enqueued outside any span carries no trace context, and its run starts a trace of
/// its own; a context the application set itself is kept as given.
#[tokio::test(start_paused = true)]
async fn without_a_span_the_run_starts_its_own_trace() {
    let (exporter, _guard) = traced();
    let pool = Pool::builder(Arc::new(MemoryStore::new()))
        .clock(Clock::tokio())
        .register(Succeeds)
        .start()
        .await
        .unwrap();
    let id = pool.client().enqueue(&Ok1).await.unwrap();
    run_to_end(&pool, id).await;
    let stored = pool.client().job(id).await.unwrap().unwrap();
    assert!(stored.metadata.is_empty(), "{:?}", stored.metadata);
    let spans = exporter.get_finished_spans().unwrap();
    let job = named(&spans, "job");
    assert_eq!(job.parent_span_id, opentelemetry::trace::SpanId::INVALID);

    let given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let options = EnqueueOptions::new().metadata("traceparent", given);
    let client = pool.client().clone();
    let id = async move { client.enqueue_with(&Ok1, options).await }
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
    run_to_end(&pool, id).await;
    assert!(pool.shutdown().await.clean);
    let stored = pool.client().job(id).await.unwrap().unwrap();
    assert_eq!(stored.metadata.get("traceparent"), Some(given));
    let spans = exporter.get_finished_spans().unwrap();
    let run = spans
        .iter()
        .filter(|span| span.name == "job")
        .find(|span| span.span_context.trace_id().to_string() == "0af7651916cd43dd8448eb211c80319c")
        .expect("the second run continues the given trace");
    assert_eq!(run.parent_span_id.to_string(), "b7ad6b7169203331");
}

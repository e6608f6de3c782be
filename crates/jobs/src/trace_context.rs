//! The trace context a job carries from its enqueue to its runs, in its [`Metadata`] as W3C
//! `traceparent` (and `tracestate` when there is one), so a trace links the request that
//! enqueued a job to the job's runs.
//!
//! With the `opentelemetry` feature an enqueue injects the current `tracing` span's
//! OpenTelemetry context (read through `tracing-opentelemetry`'s layer), and the run's `job`
//! span takes the stored context as its parent. The W3C format is written and read by
//! OpenTelemetry's own `TraceContextPropagator`, whatever global propagator the application
//! set. Without the feature both are no-ops that compile to nothing.

use crate::metadata::Metadata;

/// The metadata key of the W3C trace parent.
#[cfg(feature = "opentelemetry")]
pub(crate) const TRACEPARENT: &str = "traceparent";

/// Adds the current span's trace context to `metadata`, unless it already has one (set by
/// the application, or earlier for the same batch). Nothing when the current span has no
/// valid OpenTelemetry context (no layer installed, or outside any span).
#[cfg(feature = "opentelemetry")]
pub(crate) fn inject(metadata: &mut Metadata) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    if metadata.contains_key(TRACEPARENT) {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .inject_context(&context, &mut Carrier(metadata));
}

/// Without the `opentelemetry` feature: nothing.
#[cfg(not(feature = "opentelemetry"))]
#[inline]
pub(crate) fn inject(_: &mut Metadata) {}

/// Makes the trace context stored in `metadata` the parent of `span` (a run's `job` span,
/// not yet entered). Nothing if `metadata` has none; a context that does not parse is
/// ignored (the span starts its own trace).
#[cfg(feature = "opentelemetry")]
pub(crate) fn set_parent(span: &tracing::Span, metadata: &Metadata) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    if !metadata.contains_key(TRACEPARENT) {
        return;
    }
    let parent =
        opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Reader(metadata));
    if let Err(error) = span.set_parent(parent) {
        tracing::debug!(%error, "the job span cannot take the enqueue's trace context");
    }
}

/// Without the `opentelemetry` feature: nothing.
#[cfg(not(feature = "opentelemetry"))]
#[inline]
pub(crate) fn set_parent(_: &tracing::Span, _: &Metadata) {}

/// Writes a propagator's fields into metadata (skipping empty ones: a `tracestate` with no
/// entries).
#[cfg(feature = "opentelemetry")]
struct Carrier<'a>(&'a mut Metadata);

#[cfg(feature = "opentelemetry")]
impl opentelemetry::propagation::Injector for Carrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.insert(key, value);
        }
    }
}

/// Reads a propagator's fields from metadata.
#[cfg(feature = "opentelemetry")]
struct Reader<'a>(&'a Metadata);

#[cfg(feature = "opentelemetry")]
impl opentelemetry::propagation::Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(key, _)| key).collect()
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_injected_outside_a_traced_span() {
        let mut metadata = Metadata::new();
        inject(&mut metadata);
        assert!(metadata.is_empty(), "{metadata:?}");
    }

    #[test]
    fn a_context_already_given_is_kept() {
        let given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut metadata: Metadata = [(TRACEPARENT, given)].into_iter().collect();
        inject(&mut metadata);
        assert_eq!(metadata.get(TRACEPARENT), Some(given));
    }
}

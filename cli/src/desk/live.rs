//! `GET /events`: server-sent events that tell open pages that something changed (an answer from
//! a phone, a sync, the lock). The page then fetches itself and swaps its live regions
//! (`assets/desk/desk.js`); the events carry no record content.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;

use super::state::{DeskState, LiveEvent};

/// The event stream of one open page.
pub(crate) async fn events(
    State(state): State<DeskState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = state.0.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = match rx.recv().await {
            Ok(LiveEvent::Changed(what)) => Event::default().event("change").data(what),
            Ok(LiveEvent::Sync) => Event::default().event("sync").data("sync"),
            Ok(LiveEvent::Locked) => Event::default().event("lock").data("lock"),
            // Missed some: one refresh covers them all.
            Err(RecvError::Lagged(_)) => Event::default().event("change").data("many"),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(ev), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

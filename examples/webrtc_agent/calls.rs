//! The agent's calls: each has an id, its own pipeline and its own recording; a limit on how
//! many run at once; pause/resume acknowledged once recordmux applied them; calls that end
//! by themselves when ICE/DTLS never connects or media stops.
//!
//! Everything here blocks (GStreamer state changes, waiting for recordmux): the HTTP layer
//! calls it from blocking tasks.
//!
//! Locks, in the order they may be taken: `Call::control` (one control operation on a call at
//! a time), then `Registry::inner`, then `Call::state`, then the call's bus status (inside
//! `media`). `Registry::inner` and `Call::state` are never held while GStreamer is called
//! or waited for.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use gst::prelude::*;
use gst_webrtc::WebRTCPeerConnectionState;

use crate::media::{self, Media, MediaConfig, Transition};

/// Ended calls remembered for `GET /calls/{id}`.
const ENDED_KEPT: usize = 64;

#[derive(Clone)]
pub struct Limits {
    pub max_calls: usize,
    /// ICE and DTLS must connect within this.
    pub connect_timeout: Duration,
    /// A connected call without media from the browser for this long has ended.
    pub inactivity_timeout: Duration,
    /// How long a pause/resume waits to be applied before it is answered as queued.
    pub apply_timeout: Duration,
}

pub struct Registry {
    media: MediaConfig,
    limits: Limits,
    output_dir: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    active: HashMap<String, Arc<Call>>,
    /// Calls being set up (counted against the limit).
    starting: usize,
    ended: VecDeque<(String, serde_json::Value)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Connecting,
    Connected,
    Ending(String),
}

pub struct Call {
    pub id: String,
    created: SystemTime,
    media: Media,
    control: Mutex<()>,
    state: Mutex<Phase>,
}

/// Why a request about calls failed, mapped to an HTTP status by the server.
#[derive(Debug)]
pub enum CallError {
    /// 400
    BadRequest(String),
    /// 404
    NotFound,
    /// 409
    Conflict(String),
    /// 503
    Full(usize),
    /// 500
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::BadRequest(m) | CallError::Conflict(m) | CallError::Failed(m) => {
                f.write_str(m)
            }
            CallError::NotFound => f.write_str("no such call"),
            CallError::Full(limit) => write!(f, "{limit} calls are running: the agent is full"),
        }
    }
}

/// The outcome of a pause/resume request.
#[derive(Debug, serde::Serialize)]
pub struct Ack {
    pub call_id: String,
    pub action: &'static str,
    /// recordmux applied it (the recording changed at `transition.running_time_ns`).
    pub applied: bool,
    /// The recording was already in that state: nothing to do.
    pub unchanged: bool,
    pub transition: Option<Transition>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A call id of our own: UTC time and 48 random bits.
fn new_call_id() -> String {
    use rand::Rng;
    let now = glib_time();
    format!("{now}-{:012x}", rand::thread_rng().r#gen::<u64>() >> 16)
}

fn glib_time() -> String {
    gst::glib::DateTime::now_utc()
        .and_then(|now| now.format("%Y%m%dT%H%M%SZ"))
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "0".into())
}

/// A call id given by the client (the media server's own id): letters, digits, `-`, `_`,
/// `.`, at most 64, not starting with a dot (it names files).
pub fn check_call_id(id: &str) -> Result<(), CallError> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(CallError::BadRequest(
            "a call id is 1-64 letters, digits, '-', '_' or '.', not starting with '.'".into(),
        ))
    }
}

impl Registry {
    pub fn new(media: MediaConfig, limits: Limits, output_dir: PathBuf) -> Registry {
        Registry {
            media,
            limits,
            output_dir,
            inner: Mutex::default(),
        }
    }

    /// Starts a call for `offer`; returns its id and the SDP answer.
    pub fn start(
        &self,
        offer: &str,
        requested_id: Option<String>,
    ) -> Result<(String, String), CallError> {
        let id = match requested_id {
            Some(id) => {
                check_call_id(&id)?;
                id
            }
            None => new_call_id(),
        };
        {
            let mut inner = lock(&self.inner);
            if inner.active.contains_key(&id) || inner.ended.iter().any(|(ended, _)| *ended == id) {
                return Err(CallError::Conflict(format!("call '{id}' exists")));
            }
            if inner.active.len() + inner.starting >= self.limits.max_calls {
                return Err(CallError::Full(self.limits.max_calls));
            }
            inner.starting += 1;
        }
        let recording = self
            .output_dir
            .join(format!("{id}.{}", self.media.protection.extension()));
        let started = media::start(&self.media, &id, &recording, offer);
        let mut inner = lock(&self.inner);
        inner.starting -= 1;
        let (media, answer) = started.map_err(|e| CallError::BadRequest(e.to_string()))?;
        let call = Arc::new(Call {
            id: id.clone(),
            created: SystemTime::now(),
            media,
            control: Mutex::new(()),
            state: Mutex::new(Phase::Connecting),
        });
        inner.active.insert(id.clone(), call);
        eprintln!("call {id}: started, recording to {}", recording.display());
        Ok((id, answer))
    }

    fn call(&self, id: &str) -> Option<Arc<Call>> {
        lock(&self.inner).active.get(id).cloned()
    }

    pub fn active_ids(&self) -> Vec<String> {
        lock(&self.inner).active.keys().cloned().collect()
    }

    /// Pauses (`resume == false`) or resumes the call's recording and waits until recordmux
    /// applied it.
    pub fn pause_or_resume(&self, id: &str, resume: bool, reason: &str) -> Result<Ack, CallError> {
        let call = self.call(id).ok_or(CallError::NotFound)?;
        let _control = lock(&call.control);
        if let Phase::Ending(why) = &*lock(&call.state) {
            return Err(CallError::Conflict(format!("the call is ending ({why})")));
        }
        let action = if resume { "resume" } else { "pause" };
        let recorder = &call.media.recorder;
        let mut ack = Ack {
            call_id: id.to_string(),
            action,
            applied: false,
            unchanged: false,
            transition: None,
        };
        if recorder.property::<bool>("recording") == resume {
            ack.unchanged = true;
            return Ok(ack);
        }
        let (status, changed) = &*call.media.status;
        let seen = lock(status).transitions.len();
        recorder.emit_by_name::<()>(action, &[&reason]);
        let deadline = Instant::now() + self.limits.apply_timeout;
        let mut status = lock(status);
        loop {
            if let Some(transition) = status.transitions[seen..]
                .iter()
                .find(|t| t.paused != resume)
            {
                ack.applied = true;
                ack.transition = Some(transition.clone());
                return Ok(ack);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(ack);
            }
            status = changed
                .wait_timeout(status, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// What a call is doing (or how it ended).
    pub fn describe(&self, id: &str) -> Result<serde_json::Value, CallError> {
        if let Some(call) = self.call(id) {
            return Ok(call.describe());
        }
        lock(&self.inner)
            .ended
            .iter()
            .find(|(ended, _)| ended == id)
            .map(|(_, summary)| summary.clone())
            .ok_or(CallError::NotFound)
    }

    /// Ends a call: drains every stream into the recording, finalises (and signs) it, and
    /// returns the summary with the manifest.
    pub fn end(&self, id: &str, why: &str) -> Result<serde_json::Value, CallError> {
        let Some(call) = self.call(id) else {
            // Ended already (by a timeout, another request): its summary.
            return self.describe(id);
        };
        let _control = lock(&call.control);
        {
            let mut state = lock(&call.state);
            if let Phase::Ending(_) = &*state {
                drop(state);
                drop(_control);
                return self.describe(id);
            }
            *state = Phase::Ending(why.to_string());
        }
        eprintln!("call {id}: ending ({why})");
        let result = media::end(&call.media);
        let manifest = std::fs::read_to_string(&call.media.manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        let summary = serde_json::json!({
            "call_id": id,
            "state": "ended",
            "ended_because": why,
            "recording": call.media.recording,
            "finished": result.is_ok(),
            "error": result.as_ref().err(),
            "manifest": manifest,
        });
        {
            let mut inner = lock(&self.inner);
            inner.active.remove(id);
            inner.ended.push_back((id.to_string(), summary.clone()));
            if inner.ended.len() > ENDED_KEPT {
                inner.ended.pop_front();
            }
        }
        match result {
            Ok(()) => {
                eprintln!("call {id}: ended, {}", call.media.recording.display());
                Ok(summary)
            }
            Err(error) => {
                eprintln!("call {id}: recording failed: {error}");
                Err(CallError::Failed(format!("the recording failed: {error}")))
            }
        }
    }

    /// Calls that should end by themselves now, and why: ICE/DTLS that did not connect in
    /// time, a connection that failed or closed, media that stopped.
    pub fn due_to_end(&self) -> Vec<(String, String)> {
        let calls: Vec<Arc<Call>> = lock(&self.inner).active.values().cloned().collect();
        let mut due = Vec::new();
        for call in calls {
            let connection = call
                .media
                .webrtc
                .property::<WebRTCPeerConnectionState>("connection-state");
            let mut state = lock(&call.state);
            let age = call.media.activity.started.elapsed();
            let why = match (&*state, connection) {
                (Phase::Ending(_), _) => None,
                (_, WebRTCPeerConnectionState::Failed | WebRTCPeerConnectionState::Closed) => {
                    Some(format!("the connection {connection:?}").to_lowercase())
                }
                (Phase::Connecting, WebRTCPeerConnectionState::Connected) => {
                    *state = Phase::Connected;
                    call.media.activity.note_connected();
                    eprintln!(
                        "call {}: connected after {:.2} s",
                        call.id,
                        age.as_secs_f64()
                    );
                    None
                }
                (Phase::Connecting, _) if age > self.limits.connect_timeout => Some(format!(
                    "ICE/DTLS did not connect within {} s",
                    self.limits.connect_timeout.as_secs()
                )),
                (Phase::Connected, _)
                    if call.media.activity.idle() > self.limits.inactivity_timeout =>
                {
                    Some(format!(
                        "no media for {} s",
                        self.limits.inactivity_timeout.as_secs()
                    ))
                }
                _ => None,
            };
            if let Some(why) = why {
                due.push((call.id.clone(), why));
            }
        }
        due
    }
}

impl Call {
    fn describe(&self) -> serde_json::Value {
        let state = lock(&self.state).clone();
        // Asked before the bus status is locked: its sync handler runs in streaming threads.
        let recording_active = self.media.recorder.property::<bool>("recording");
        let status = lock(&self.media.status.0);
        let created = self
            .created
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        serde_json::json!({
            "call_id": self.id,
            "state": match &state {
                Phase::Connecting => "connecting",
                Phase::Connected => "connected",
                Phase::Ending(_) => "ending",
            },
            "created_unix": created,
            "recording": self.media.recording,
            "recording_active": recording_active,
            "transitions": status.transitions,
            "error": status.error,
            "media_idle_ms": self.media.activity.idle().as_millis() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_name_files_safely() {
        for good in ["C-1234", "sip_abc.def", "a"] {
            assert!(check_call_id(good).is_ok(), "{good}");
        }
        for bad in ["", "../etc", ".hidden", "a/b", "x y", &"x".repeat(65)] {
            assert!(check_call_id(bad).is_err(), "{bad}");
        }
        let id = new_call_id();
        assert!(check_call_id(&id).is_ok(), "{id}");
    }
}

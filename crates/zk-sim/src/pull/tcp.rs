//! One TCP connection of the simulated terminal: cut request frames from the stream (several per read, or one
//! over several reads), answer each in order, and send live events one at a time, each after the client's ACK
//! of the previous one or `event_ack_timeout` (pull-simulator.md §3 live_capture, rule R5).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::Instant;
use zk_pull::records::AttendanceEvent;

use super::drain::{self, Drained};
use super::responder::{event_packet, handle_request, After, Context, Session, Transport};
use super::wire::{cut_tcp_frame, render, Wire};
use super::{utc_now, Direction, Shared};

/// The longest wait for a client to read a paced transfer's frames before sending on anyway.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Keeps the live-subscriber count right however the connection ends (including task abort at shutdown).
struct Subscription {
    shared: Arc<Shared>,
    events: broadcast::Receiver<AttendanceEvent>,
}

impl Subscription {
    fn new(shared: &Arc<Shared>) -> Subscription {
        let events = shared.events.subscribe();
        shared.add_subscriber(1);
        Subscription {
            shared: Arc::clone(shared),
            events,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.add_subscriber(-1);
    }
}

async fn next_event(subscription: &mut Option<Subscription>) -> AttendanceEvent {
    match subscription {
        Some(subscription) => loop {
            match subscription.events.recv().await {
                Ok(event) => return event,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live events dropped: client too slow");
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        },
        None => std::future::pending().await,
    }
}

/// Carry out a write plan; `Ok(false)` when the plan closes the connection.
async fn write_plan(
    writer: &mut OwnedWriteHalf,
    peer: SocketAddr,
    plan: Vec<Wire>,
) -> std::io::Result<bool> {
    // A client that stops reading gets the rest of this reply without further waits.
    let mut stalled = false;
    for step in plan {
        match step {
            Wire::Bytes(bytes) => writer.write_all(&bytes).await?,
            Wire::Pause(duration) => tokio::time::sleep(duration).await,
            Wire::Drain(_) if stalled => {}
            Wire::Drain(fallback) => {
                match drain::tcp(writer.local_addr()?, peer, DRAIN_MAX).await {
                    Drained::Read => {}
                    Drained::Stalled => stalled = true,
                    Drained::Unobservable => tokio::time::sleep(fallback).await,
                }
            }
            Wire::Close => {
                writer.shutdown().await?;
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Serve one TCP connection until the client closes it, sends EXIT, a restart happens, or a frame is
/// malformed.
#[tracing::instrument(skip_all, fields(peer = %peer))]
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    if let Err(error) = serve_inner(stream, peer, &shared).await {
        tracing::debug!(%error, "connection ended");
    }
}

async fn serve_inner(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    // Replies are single writes; don't let Nagle hold back the small ones.
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    let mut session = Session::new(shared.new_session_id());
    let mut buf = BytesMut::with_capacity(4096);
    let mut subscription: Option<Subscription> = None;
    let mut pending_events: VecDeque<AttendanceEvent> = VecDeque::new();
    let mut ack_deadline: Option<Instant> = None;
    let mut restarts = shared.restarts.subscribe();
    let config = &shared.config;
    shared.model().counters.tcp_connections += 1;
    loop {
        tokio::select! {
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
                loop {
                    let (request, checksum_ok) = match cut_tcp_frame(&mut buf) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => break,
                        Err(error) => {
                            shared.model().counters.malformed_frames += 1;
                            tracing::debug!(%error, "closing: malformed frame");
                            return Ok(());
                        }
                    };
                    if !checksum_ok {
                        shared.model().counters.bad_checksums += 1;
                        if config.faults.drop_bad_checksum_requests {
                            continue;
                        }
                    }
                    shared.log(Transport::Tcp, peer, Direction::Request, [&request], checksum_ok);
                    let ctx = Context { config, transport: Transport::Tcp, utc_now: utc_now() };
                    let reply = handle_request(&mut session, &mut shared.model(), &ctx, &request);
                    shared.log(Transport::Tcp, peer, Direction::Reply, &reply.packets, true);
                    if reply.event_ack {
                        shared.model().counters.events_acked += 1;
                        ack_deadline = None;
                    }
                    let (plan, rendered) =
                        render(
                            &reply,
                            request.command,
                            Transport::Tcp,
                            &config.faults,
                            &config.pacing,
                            &mut shared.fault_state(),
                        );
                    shared.count_faults(rendered);
                    if reply.after == After::Restart {
                        // Restart before the ACK leaves: a client reconnecting as soon as it reads the ACK must
                        // not be caught by this restart.
                        shared.restart();
                    }
                    if !write_plan(&mut writer, peer, plan).await? || reply.after != After::Continue {
                        return Ok(());
                    }
                    match (session.wants_attendance_events(), subscription.is_some()) {
                        (true, false) => subscription = Some(Subscription::new(shared)),
                        (false, true) => {
                            subscription = None;
                            pending_events.clear();
                            ack_deadline = None;
                        }
                        _ => {}
                    }
                }
            }
            event = next_event(&mut subscription) => pending_events.push_back(event),
            _ = restarts.changed() => return Ok(()),
            () = sleep_until(ack_deadline), if ack_deadline.is_some() => ack_deadline = None,
        }
        if ack_deadline.is_none() {
            if let Some(event) = pending_events.pop_front() {
                let packet = event_packet(config, Transport::Tcp, &event);
                shared.log(Transport::Tcp, peer, Direction::Event, [&packet], true);
                writer.write_all(&packet.encode_tcp()).await?;
                shared.model().counters.events_sent += 1;
                ack_deadline = Some(Instant::now() + config.event_ack_timeout);
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

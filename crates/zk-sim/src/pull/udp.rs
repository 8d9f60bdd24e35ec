//! The UDP side of the simulated terminal: one socket, sessions keyed by session id (`CMD_CONNECT` opens
//! one), replies to whatever address the request came from (pull-simulator.md rule R4), live events to every
//! session registered for them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::broadcast;
use zk_pull::codec::{self, cmd, Packet};

use super::drain::{self, Drained};
use super::responder::{event_packet, handle_request, After, Context, Session, Transport};
use super::wire::{render, Wire};
use super::{utc_now, Direction, Shared};

/// Largest datagram we read: bigger than any request a client sends.
const MAX_DATAGRAM: usize = 65_536;

struct Peer {
    session: Session,
    addr: SocketAddr,
    subscribed: bool,
}

struct Sessions {
    shared: Arc<Shared>,
    by_id: HashMap<u16, Peer>,
}

impl Sessions {
    fn sync_subscription(&mut self, id: u16) {
        if let Some(peer) = self.by_id.get_mut(&id) {
            let wants = peer.session.wants_attendance_events();
            if wants != peer.subscribed {
                peer.subscribed = wants;
                self.shared.add_subscriber(if wants { 1 } else { -1 });
            }
        }
    }

    fn remove(&mut self, id: u16) {
        if let Some(peer) = self.by_id.remove(&id) {
            if peer.subscribed {
                self.shared.add_subscriber(-1);
            }
        }
    }

    fn clear(&mut self) {
        let ids: Vec<u16> = self.by_id.keys().copied().collect();
        for id in ids {
            self.remove(id);
        }
    }
}

impl Drop for Sessions {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The longest wait for a client to read a paced transfer's datagrams before sending on anyway.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(1);

async fn send_plan(socket: &UdpSocket, addr: SocketAddr, plan: Vec<Wire>) -> std::io::Result<()> {
    // A client that stops reading gets the rest of this reply without further waits (the UDP socket serves
    // every client from one task).
    let mut stalled = false;
    for step in plan {
        match step {
            Wire::Bytes(bytes) => {
                socket.send_to(&bytes, addr).await?;
            }
            Wire::Pause(duration) => tokio::time::sleep(duration).await,
            Wire::Drain(_) if stalled => {}
            Wire::Drain(fallback) => match drain::udp(addr, DRAIN_MAX).await {
                Drained::Read => {}
                Drained::Stalled => stalled = true,
                Drained::Unobservable => tokio::time::sleep(fallback).await,
            },
            Wire::Close => return Ok(()),
        }
    }
    Ok(())
}

/// Serve UDP until the task is dropped. Send errors (e.g. ICMP port unreachable surfacing as
/// `ConnectionRefused` on Linux) are logged and ignored: one gone client must not stop the device.
pub(crate) async fn serve(socket: UdpSocket, shared: Arc<Shared>) {
    let mut sessions = Sessions {
        shared: Arc::clone(&shared),
        by_id: HashMap::new(),
    };
    let mut events = shared.events.subscribe();
    let mut restarts = shared.restarts.subscribe();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            // A restart (from a TCP client) is handled before any datagram that arrives after it.
            biased;
            _ = restarts.changed() => sessions.clear(),
            received = socket.recv_from(&mut buf) => {
                let (len, addr) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        tracing::debug!(%error, "udp receive failed");
                        continue;
                    }
                };
                let datagram = buf.get(..len).unwrap_or(&[]);
                match handle_datagram(&socket, &shared, &mut sessions, datagram, addr).await {
                    Ok(After::Restart) => {
                        // Forget every session now, before the next datagram (a client reconnecting at once
                        // must keep its new session), and mark this restart as handled.
                        shared.restart();
                        restarts.borrow_and_update();
                        sessions.clear();
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, %addr, "udp send failed"),
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    for peer in sessions.by_id.values().filter(|p| p.subscribed) {
                        let packet = event_packet(&shared.config, Transport::Udp, &event);
                        shared.log(Transport::Udp, peer.addr, Direction::Event, [&packet], true);
                        if let Err(error) = socket.send_to(&packet.encode(), peer.addr).await {
                            tracing::debug!(%error, "udp event send failed");
                            continue;
                        }
                        shared.model().counters.events_sent += 1;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live events dropped on udp");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

async fn handle_datagram(
    socket: &UdpSocket,
    shared: &Arc<Shared>,
    sessions: &mut Sessions,
    datagram: &[u8],
    addr: SocketAddr,
) -> std::io::Result<After> {
    let config = &shared.config;
    let Ok((request, checksum_ok)) = codec::decode_checked(datagram) else {
        shared.model().counters.malformed_frames += 1;
        return Ok(After::Continue);
    };
    if !checksum_ok {
        shared.model().counters.bad_checksums += 1;
        if config.faults.drop_bad_checksum_requests {
            return Ok(After::Continue);
        }
    }
    let id = if request.command == cmd::CONNECT {
        let id = shared.new_session_id();
        sessions.by_id.insert(
            id,
            Peer {
                session: Session::new(id),
                addr,
                subscribed: false,
            },
        );
        shared.model().counters.udp_sessions += 1;
        id
    } else {
        request.session_id
    };
    let Some(peer) = sessions.by_id.get_mut(&id) else {
        // No such session (never connected, exited, or the device restarted): not authenticated.
        shared.model().counters.requests += 1;
        shared.log(
            Transport::Udp,
            addr,
            Direction::Request,
            [&request],
            checksum_ok,
        );
        if request.command == cmd::ACK_OK {
            return Ok(After::Continue);
        }
        let refusal = Packet::new(
            cmd::ACK_UNAUTH,
            request.session_id,
            request.reply_id,
            Vec::new(),
        );
        shared.log(Transport::Udp, addr, Direction::Reply, [&refusal], true);
        socket.send_to(&refusal.encode(), addr).await?;
        return Ok(After::Continue);
    };
    peer.addr = addr;
    let ctx = Context {
        config,
        transport: Transport::Udp,
        utc_now: utc_now(),
    };
    shared.log(
        Transport::Udp,
        addr,
        Direction::Request,
        [&request],
        checksum_ok,
    );
    let reply = handle_request(&mut peer.session, &mut shared.model(), &ctx, &request);
    shared.log(Transport::Udp, addr, Direction::Reply, &reply.packets, true);
    if reply.event_ack {
        shared.model().counters.events_acked += 1;
    }
    let (plan, rendered) = render(
        &reply,
        request.command,
        Transport::Udp,
        &config.faults,
        &config.pacing,
        &mut shared.fault_state(),
    );
    shared.count_faults(rendered);
    send_plan(socket, addr, plan).await?;
    match reply.after {
        After::Continue => sessions.sync_subscription(id),
        After::Close => sessions.remove(id),
        After::Restart => {}
    }
    Ok(reply.after)
}

//! A raw-socket client that sends exactly the bytes a test wants and reads replies frame by frame, keeping the
//! checksum verdict (the simulator's faults are asserted byte by byte).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use zk_pull::codec::{cmd, decode_checked, Packet, TCP_MAGIC};

/// How long a test waits for something that should arrive.
pub const ARRIVES: Duration = Duration::from_secs(3);
/// How long a test waits to be sure nothing arrives.
pub const SILENCE: Duration = Duration::from_millis(300);

pub struct RawTcp {
    pub stream: TcpStream,
    pub session: u16,
    pub reply_id: u16,
}

/// What reading one frame gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Frame(Packet, bool),
    Closed,
    Nothing,
}

impl RawTcp {
    pub async fn open(addr: SocketAddr) -> RawTcp {
        RawTcp {
            stream: TcpStream::connect(addr).await.unwrap(),
            session: 0,
            reply_id: 0,
        }
    }

    /// Open and CONNECT (no comm key): the session id is taken from the reply.
    pub async fn connect(addr: SocketAddr) -> RawTcp {
        let mut client = RawTcp::open(addr).await;
        let reply = client.request(cmd::CONNECT, &[]).await;
        assert_eq!(reply.command, cmd::ACK_OK);
        client.session = reply.session_id;
        client
    }

    /// The next request packet (session and reply id filled in, reply id advanced).
    pub fn packet(&mut self, command: u16, payload: &[u8]) -> Packet {
        let packet = Packet::new(command, self.session, self.reply_id, payload.to_vec());
        self.reply_id = self.reply_id.wrapping_add(1);
        packet
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    pub async fn send(&mut self, command: u16, payload: &[u8]) -> Packet {
        let packet = self.packet(command, payload);
        self.send_bytes(&packet.encode_tcp()).await;
        packet
    }

    /// Read one frame within `wait`: the packet and whether its checksum verified.
    pub async fn read_within(&mut self, wait: Duration) -> Read {
        let mut header = [0u8; 8];
        match tokio::time::timeout(wait, self.stream.read_exact(&mut header)).await {
            Err(_) => return Read::Nothing,
            Ok(Err(_)) => return Read::Closed,
            Ok(Ok(_)) => {}
        }
        assert_eq!(header[..4], TCP_MAGIC);
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut body = vec![0u8; len];
        tokio::time::timeout(ARRIVES, self.stream.read_exact(&mut body))
            .await
            .expect("frame body did not arrive")
            .expect("connection closed inside a frame");
        let (packet, ok) = decode_checked(&body).unwrap();
        Read::Frame(packet, ok)
    }

    /// Read one frame that must arrive, with a valid checksum.
    pub async fn read(&mut self) -> Packet {
        match self.read_within(ARRIVES).await {
            Read::Frame(packet, true) => packet,
            other => panic!("expected a frame with a good checksum, got {other:?}"),
        }
    }

    pub async fn request(&mut self, command: u16, payload: &[u8]) -> Packet {
        let sent = self.send(command, payload).await;
        let reply = self.read().await;
        assert_eq!(reply.reply_id, sent.reply_id, "reply id echoed");
        reply
    }

    /// Read raw bytes until the peer closes (or `ARRIVES` passes).
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        tokio::time::timeout(ARRIVES, self.stream.read_to_end(&mut bytes))
            .await
            .expect("connection was not closed")
            .unwrap();
        bytes
    }
}

pub struct RawUdp {
    pub socket: UdpSocket,
    pub session: u16,
    pub reply_id: u16,
}

impl RawUdp {
    pub async fn open(addr: SocketAddr) -> RawUdp {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        socket.connect(addr).await.unwrap();
        RawUdp {
            socket,
            session: 0,
            reply_id: 0,
        }
    }

    pub async fn connect(addr: SocketAddr) -> RawUdp {
        let mut client = RawUdp::open(addr).await;
        let reply = client.request(cmd::CONNECT, &[]).await;
        assert_eq!(reply.command, cmd::ACK_OK);
        client.session = reply.session_id;
        client
    }

    pub async fn send(&mut self, command: u16, payload: &[u8]) -> Packet {
        let packet = Packet::new(command, self.session, self.reply_id, payload.to_vec());
        self.reply_id = self.reply_id.wrapping_add(1);
        self.socket.send(&packet.encode()).await.unwrap();
        packet
    }

    /// One datagram within `wait`, decoded, or `None`.
    pub async fn read_within(&mut self, wait: Duration) -> Option<(Packet, bool)> {
        let mut buf = vec![0u8; 65_536];
        let len = tokio::time::timeout(wait, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        Some(decode_checked(&buf[..len]).unwrap())
    }

    pub async fn read(&mut self) -> Packet {
        let (packet, ok) = self
            .read_within(ARRIVES)
            .await
            .expect("no datagram arrived");
        assert!(ok, "bad checksum in {packet:?}");
        packet
    }

    pub async fn request(&mut self, command: u16, payload: &[u8]) -> Packet {
        let sent = self.send(command, payload).await;
        let reply = self.read().await;
        assert_eq!(reply.reply_id, sent.reply_id, "reply id echoed");
        reply
    }
}

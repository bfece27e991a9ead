//! Server-Sent Events from the outside: a client of `/stream/<device>` on a
//! raw socket, so that a test controls how fast it reads.

use crate::Host;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

/// An SSE client on a raw socket: the test controls how fast it reads.
pub struct Stream {
    /// The socket, for a test that reads it itself.
    pub reader: BufReader<TcpStream>,
}

impl Stream {
    pub fn open(host: &Host, device: &str) -> Stream {
        use std::io::Write;
        let mut socket = TcpStream::connect(host.addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            socket,
            "GET /stream/{} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n",
            crate::path_segment(device)
        )
        .unwrap();
        let mut stream = Stream {
            reader: BufReader::new(socket),
        };
        let status = stream.line();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        while !stream.line().is_empty() {}
        assert_eq!(stream.next_event().0, "ready");
        stream
    }

    /// One line of the (chunked) body, without its line end; chunk sizes skipped.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("the stream is open");
        line.trim_end_matches(['\r', '\n']).to_owned()
    }

    /// The next event: its name and its data. Keep-alive comments are skipped.
    pub fn next_event(&mut self) -> (String, String) {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            let line = self.line();
            if let Some(value) = line.strip_prefix("event: ") {
                name = value.to_owned();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = value.to_owned();
            } else if line.is_empty() && !name.is_empty() {
                return (name, data);
            }
        }
    }
}

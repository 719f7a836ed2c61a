//! The four rtnetlink requests that plumb a box into the bridge, sent directly (no `ip`
//! processes on the start path): a veth pair with one end in the box's namespace, the host end
//! on the bridge, the box end's address and default route.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;

fn nl_err(what: &str, e: io::Error) -> Error {
    Error::FailedPrecondition(format!("netlink {what}: {e}"))
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A netlink message under construction: header, fixed part, then attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; NLMSG_HDR];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        let flags = flags | libc::NLM_F_REQUEST as u16 | libc::NLM_F_ACK as u16;
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(bytes);
        self.buf.resize(align(self.buf.len()), 0);
        self
    }

    /// `struct ifinfomsg` with the given index and flags.
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) -> &mut Msg {
        let mut m = [0u8; IFINFOMSG];
        m[4..8].copy_from_slice(&index.to_ne_bytes());
        m[8..12].copy_from_slice(&flags.to_ne_bytes());
        m[12..16].copy_from_slice(&change.to_ne_bytes());
        self.raw(&m)
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.raw(data)
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn nest(&mut self, kind: u16) -> &mut Msg {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Msg {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(&mut self) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        &self.buf
    }
}

/// A NETLINK_ROUTE socket in the calling thread's network namespace.
pub struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    /// A socket in the network namespace the caller is in.
    pub fn open() -> Result<Netlink> {
        // SAFETY: plain socket call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(nl_err("socket", io::Error::last_os_error()));
        }
        // SAFETY: fresh fd.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A socket in the network namespace of `pid`, with the indexes of its `names`
    /// interfaces. A short-lived thread enters the namespace; the socket stays bound to it.
    pub fn open_in(pid: i32, names: &[&str]) -> Result<(Netlink, Vec<i32>)> {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
            .map_err(|e| nl_err("open netns", e))?;
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a namespace fd we own.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
                return Err(nl_err("setns", io::Error::last_os_error()));
            }
            let nl = Netlink::open()?;
            let idx = names
                .iter()
                .map(|n| index_of(n))
                .collect::<Result<Vec<_>>>()?;
            Ok((nl, idx))
        })
        .join()
        .map_err(|_| Error::FailedPrecondition("netlink thread panicked".into()))?
    }

    fn send(&self, msg: &mut Msg, what: &str) -> Result<()> {
        let data = msg.finish();
        // SAFETY: valid fd and buffer; the kernel is the destination (zeroed sockaddr_nl).
        let n = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(nl_err(what, io::Error::last_os_error()));
        }
        let mut buf = [0u8; 8192];
        // SAFETY: valid fd and buffer.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < (NLMSG_HDR + 4) as isize {
            return Err(nl_err(what, io::Error::last_os_error()));
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        if kind != libc::NLMSG_ERROR as u16 {
            return Err(Error::FailedPrecondition(format!(
                "netlink {what}: unexpected reply {kind}"
            )));
        }
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if code != 0 {
            return Err(nl_err(what, io::Error::from_raw_os_error(-code)));
        }
        Ok(())
    }

    /// Creates veth `host` here with its peer `peer` in the network namespace of `pid`.
    pub fn add_veth(&self, host: &str, peer: &str, pid: i32) -> Result<()> {
        let mut m = Msg::new(
            libc::RTM_NEWLINK,
            (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        );
        m.ifinfo(0, 0, 0).attr_str(libc::IFLA_IFNAME, host);
        m.nest(libc::IFLA_LINKINFO)
            .attr_str(libc::IFLA_INFO_KIND, "veth");
        m.nest(libc::IFLA_INFO_DATA).nest(1 /* VETH_INFO_PEER */);
        m.ifinfo(0, 0, 0)
            .attr_str(libc::IFLA_IFNAME, peer)
            .attr_u32(libc::IFLA_NET_NS_PID, pid as u32);
        m.end().end().end();
        self.send(&mut m, "add veth")
    }

    /// Brings interface `index` up, on bridge `master` when given.
    pub fn link_up(&self, index: i32, master: Option<i32>) -> Result<()> {
        let mut m = Msg::new(libc::RTM_NEWLINK, 0);
        m.ifinfo(index, libc::IFF_UP as u32, libc::IFF_UP as u32);
        if let Some(master) = master {
            m.attr_u32(libc::IFLA_MASTER, master as u32);
        }
        self.send(&mut m, "set link up")
    }

    /// Adds `ip/prefix` to interface `index`.
    pub fn add_addr(&self, index: i32, ip: Ipv4Addr, prefix: u8) -> Result<()> {
        let mut m = Msg::new(
            libc::RTM_NEWADDR,
            (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        );
        let mut ifa = [0u8; 8];
        ifa[0] = libc::AF_INET as u8;
        ifa[1] = prefix;
        ifa[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        m.raw(&ifa)
            .attr(libc::IFA_LOCAL, &ip.octets())
            .attr(libc::IFA_ADDRESS, &ip.octets());
        self.send(&mut m, "add address")
    }

    /// Adds the default route via `gw` on interface `index`.
    pub fn add_default_route(&self, index: i32, gw: Ipv4Addr) -> Result<()> {
        let mut m = Msg::new(
            libc::RTM_NEWROUTE,
            (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
        );
        let rtm = [
            libc::AF_INET as u8,
            0, // dst_len
            0, // src_len
            0, // tos
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            libc::RTN_UNICAST,
            0,
            0,
            0,
            0, // flags
        ];
        m.raw(&rtm)
            .attr(libc::RTA_GATEWAY, &gw.octets())
            .attr_u32(libc::RTA_OIF, index as u32);
        self.send(&mut m, "add default route")
    }
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn index_of(name: &str) -> Result<i32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| Error::InvalidArgument(format!("interface name {name:?}")))?;
    // SAFETY: valid C string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(nl_err(
            &format!("find interface {name}"),
            io::Error::last_os_error(),
        ));
    }
    Ok(idx as i32)
}

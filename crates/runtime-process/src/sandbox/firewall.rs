//! The host's side of the instances' outbound network, installed once at
//! start-up with one `nft -f -`: IPv4 forwarding on, and a table of this
//! subnet's own (`inet updraft_<subnet>`, deleted and re-made at each start,
//! atomically) that masquerades the subnet's traffic to the outside and
//! drops, from the instances' interfaces (`ud*`): everything to the host
//! itself (its loopback, its addresses, the host ends of the veths, every
//! service on 0.0.0.0 — the server's included), forwarding to another
//! instance, forwarding to 169.254.0.0/16 (cloud metadata); and new
//! connections from outside into an instance.

use super::netns::Subnet;
use std::io::Write;
use std::process::{Command, Stdio};

/// The nft table of a subnet.
pub fn table_name(subnet: &Subnet) -> String {
    format!("updraft_{}", subnet.to_string().replace(['.', '/'], "_"))
}

/// The ruleset, as `nft -f` reads it.
pub fn ruleset(subnet: &Subnet) -> String {
    let t = table_name(subnet);
    format!(
        r#"table inet {t}
delete table inet {t}
table inet {t} {{
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    iifname "ud*" drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    iifname "ud*" oifname "ud*" drop
    iifname "ud*" ip daddr 169.254.0.0/16 drop
    iifname "ud*" fib daddr type local drop
    iifname "ud*" meta nfproto ipv6 drop
    oifname "ud*" ct state established,related accept
    oifname "ud*" drop
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} ip daddr != {subnet} masquerade
  }}
}}
"#
    )
}

/// Turns forwarding on and installs the table; says what it did, or why not.
pub fn install(subnet: &Subnet) -> Result<String, String> {
    let mut child = match Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("no nft: install nftables for NAT and filtering".into())
        }
        Err(e) => return Err(format!("cannot run nft ({e})")),
    };
    let text = ruleset(subnet);
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(text.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nft failed ({e})"))?;
    if !out.status.success() || !matches!(written, Some(Ok(()))) {
        return Err(format!(
            "nft refused the ruleset ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| format!("cannot enable IPv4 forwarding ({e})"))?;
    Ok(format!(
        "NAT from {subnet} (nft table inet {}); the host, other instances and 169.254.0.0/16 out of reach",
        table_name(subnet)
    ))
}

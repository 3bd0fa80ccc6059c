//! Who holds an address, as the agents' pinned maps say, and waiting for
//! one owner.

use super::*;

impl KubeLab {
    /// Running agents whose map holds `address`, with the interfaces it is
    /// pinned on.
    pub fn holders_on(&self, address: &str) -> Vec<(&'static str, BTreeSet<String>)> {
        let address: IpAddr = address.parse().expect("test address");
        self.agents
            .iter()
            .filter(|a| a.is_running())
            .filter_map(|a| {
                let on: BTreeSet<String> = a
                    .pinned()
                    .into_iter()
                    .filter(|(ip, _)| *ip == address)
                    .map(|(_, interface)| interface)
                    .collect();
                (!on.is_empty()).then_some((a.node, on))
            })
            .collect()
    }

    /// Running agents whose map holds `address`.
    pub fn holders(&self, address: &str) -> Vec<&'static str> {
        self.holders_on(address)
            .into_iter()
            .map(|(node, _)| node)
            .collect()
    }

    /// The one running agent holding every one of `addresses` while no other
    /// agent holds any of them, unchanged for `SETTLED` (agents that have just
    /// started or seen a change can disagree for a moment).
    pub fn sole_owner(&self, addresses: &[&str], what: &str) -> &'static str {
        self.settled_owner(addresses, &[], what)
    }

    /// Like `sole_owner`, for an owner other than `previous` (after a change
    /// that has to move the addresses away from it).
    pub fn new_owner(&self, addresses: &[&str], previous: &str, what: &str) -> &'static str {
        self.settled_owner(addresses, &[previous], what)
    }

    fn settled_owner(&self, addresses: &[&str], not: &[&str], what: &str) -> &'static str {
        let deadline = Instant::now() + self.wait;
        let mut candidate: Option<(&'static str, Instant)> = None;
        loop {
            let holders: Vec<Vec<&'static str>> =
                addresses.iter().map(|a| self.holders(a)).collect();
            let single = match holders.first() {
                Some(first)
                    if first.len() == 1
                        && holders.iter().all(|h| h == first)
                        && !not.contains(&first[0]) =>
                {
                    Some(first[0])
                }
                _ => None,
            };
            candidate = match (single, candidate) {
                (Some(node), Some((held, since))) if node == held => Some((held, since)),
                (Some(node), _) => Some((node, Instant::now())),
                (None, _) => None,
            };
            if let Some((node, since)) = candidate {
                if since.elapsed() >= SETTLED {
                    return node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {:?} waiting for {what}; holders: {:?}",
                self.wait,
                addresses.iter().zip(holders).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn nobody_holds(&self, addresses: &[&str], what: &str) {
        let gone = wait_for(self.wait, || {
            addresses
                .iter()
                .all(|a| self.holders(a).is_empty())
                .then_some(())
        });
        if gone.is_none() {
            let holders: Vec<_> = addresses.iter().map(|a| (a, self.holders(a))).collect();
            panic!(
                "timed out after {:?} waiting for {what}; holders: {holders:?}",
                self.wait
            );
        }
    }
}

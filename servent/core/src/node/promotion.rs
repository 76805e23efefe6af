//! `--mode auto`: when a leaf becomes an ultrapeer, and back.
//!
//! As gtk-gnutella decides (`nodes.c`, `node_slow_update` and
//! `can_become_ultra`), a servent in auto mode starts as a leaf and is
//! promoted once it is **reachable** (the firewall check,
//! [`crate::push::Reachability`], the same rule that sets our QueryHits'
//! push flag) and has been **up** [`MIN_UPTIME`], and not
//! before [`SWITCH_MIN`] after its last switch. An ultrapeer promoted so is
//! demoted when it stops meeting the requirements, or when no leaf has been
//! with it for [`NO_LEAF_MAX`]; each demotion doubles the time it stays a
//! leaf before trying again, up to [`SWITCH_MAX`] (it stays an ultrapeer
//! while reachable and sheltering leaves, however it was promoted).
//! gtk-gnutella also checks
//! bandwidth, memory, descriptors and the average uptime of past sessions;
//! we do not measure those.
//!
//! One rule more, for a network of our own: a leaf that finds **no
//! ultrapeer** for [`SHORTAGE_WAIT`] while it is reachable (every host it
//! knows is a leaf too, or refuses) promotes itself, so that servents all
//! started in auto mode still link up. An ultrapeer demoted for want of
//! leaves finds the others' ultrapeers then, and stays their leaf.
//!
//! Pure: the facts and the time are passed in.

use std::time::{Duration, Instant};

use crate::handshake::Role;

/// Uptime before a leaf may become an ultrapeer (gtk-gnutella's `NODE_MIN_UPTIME`).
pub const MIN_UPTIME: Duration = Duration::from_secs(3600);
/// The least time between two switches (`NODE_AUTO_SWITCH_MIN`).
pub const SWITCH_MIN: Duration = Duration::from_secs(1800);
/// The most a demoted ultrapeer waits as a leaf (`NODE_AUTO_SWITCH_MAX`).
pub const SWITCH_MAX: Duration = Duration::from_secs(61_200);
/// An ultrapeer with no leaf this long is better off a leaf (`NODE_UP_NO_LEAF_MAX`).
pub const NO_LEAF_MAX: Duration = Duration::from_secs(3600);
/// A reachable leaf without any ultrapeer this long promotes itself.
pub const SHORTAGE_WAIT: Duration = Duration::from_secs(30);

/// What the node knows of itself when it decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The role it plays now.
    pub role: Role,
    /// Whether the firewall check finds us reachable.
    pub reachable: bool,
    /// Ultrapeer links it has.
    pub ultrapeers: usize,
    /// Leaves it shelters.
    pub leaves: usize,
}

/// The auto mode's memory; see the module documentation.
#[derive(Clone, Debug)]
pub struct Promotion {
    started: Instant,
    switched: Instant,
    leaf_stint: Duration,
    /// Since when a leaf has had no ultrapeer, or an ultrapeer no leaf.
    alone_since: Option<Instant>,
}

impl Promotion {
    /// A servent started at `now` (as a leaf).
    pub fn new(now: Instant) -> Promotion {
        Promotion { started: now, switched: now, leaf_stint: SWITCH_MIN, alone_since: None }
    }

    /// The role to switch to at `now`, if any.
    pub fn decide(&mut self, facts: Facts, now: Instant) -> Option<Role> {
        let alone = match facts.role {
            Role::Leaf => facts.ultrapeers == 0,
            Role::Ultrapeer => facts.leaves == 0,
        };
        let alone_for = if alone { now.duration_since(*self.alone_since.get_or_insert(now)) } else { Duration::ZERO };
        if !alone {
            self.alone_since = None;
        }
        let since_switch = now.duration_since(self.switched);
        let capable = facts.reachable && now.duration_since(self.started) >= MIN_UPTIME;
        let next = match facts.role {
            Role::Leaf if facts.reachable && alone_for >= SHORTAGE_WAIT => Some(Role::Ultrapeer),
            Role::Leaf if capable && since_switch >= self.leaf_stint => Some(Role::Ultrapeer),
            Role::Ultrapeer if since_switch >= SWITCH_MIN && (!facts.reachable || alone_for >= NO_LEAF_MAX) => {
                self.leaf_stint = (self.leaf_stint * 2).min(SWITCH_MAX);
                Some(Role::Leaf)
            }
            _ => None,
        };
        if next.is_some() {
            self.switched = now;
            self.alone_since = None;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(reachable: bool, ultrapeers: usize) -> Facts {
        Facts { role: Role::Leaf, reachable, ultrapeers, leaves: 0 }
    }

    #[test]
    fn a_reachable_leaf_is_promoted_after_an_hour_up_not_before() {
        let start = Instant::now();
        let mut auto = Promotion::new(start);
        assert_eq!(auto.decide(leaf(true, 3), start + MIN_UPTIME - Duration::from_secs(1)), None);
        assert_eq!(auto.decide(leaf(false, 3), start + MIN_UPTIME), None, "firewalled: never");
        assert_eq!(auto.decide(leaf(true, 3), start + MIN_UPTIME), Some(Role::Ultrapeer));
    }

    #[test]
    fn a_reachable_leaf_that_finds_no_ultrapeer_promotes_itself() {
        let start = Instant::now();
        let mut auto = Promotion::new(start);
        assert_eq!(auto.decide(leaf(true, 0), start), None);
        assert_eq!(auto.decide(leaf(true, 0), start + SHORTAGE_WAIT / 2), None);
        assert_eq!(auto.decide(leaf(true, 1), start + SHORTAGE_WAIT / 2), None, "an ultrapeer came: the wait restarts");
        assert_eq!(auto.decide(leaf(true, 0), start + SHORTAGE_WAIT), None);
        assert_eq!(auto.decide(leaf(true, 0), start + SHORTAGE_WAIT * 2), Some(Role::Ultrapeer));
        let mut unreachable = Promotion::new(start);
        assert_eq!(unreachable.decide(leaf(false, 0), start + MIN_UPTIME * 2), None);
    }

    #[test]
    fn an_ultrapeer_without_leaves_is_demoted_and_waits_longer_each_time() {
        let start = Instant::now();
        let mut auto = Promotion::new(start);
        let promoted = start + MIN_UPTIME;
        assert_eq!(auto.decide(leaf(true, 3), promoted), Some(Role::Ultrapeer));
        let lonely = Facts { role: Role::Ultrapeer, reachable: true, ultrapeers: 3, leaves: 0 };
        assert_eq!(auto.decide(lonely, promoted + SWITCH_MIN), None, "alone from now");
        let demoted = promoted + SWITCH_MIN + NO_LEAF_MAX;
        assert_eq!(auto.decide(lonely, demoted), Some(Role::Leaf));
        assert_eq!(
            auto.decide(leaf(true, 3), demoted + SWITCH_MIN),
            None,
            "the second stint as a leaf is twice as long"
        );
        assert_eq!(auto.decide(leaf(true, 3), demoted + SWITCH_MIN * 2), Some(Role::Ultrapeer));
        let busy = Facts { leaves: 12, ..lonely };
        assert_eq!(auto.decide(busy, demoted + SWITCH_MIN * 2 + NO_LEAF_MAX * 3), None, "leaves keep it an ultrapeer");
    }
}

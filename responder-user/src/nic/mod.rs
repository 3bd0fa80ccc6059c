//! What real NICs need from the agent beyond attaching the program (the
//! node's own MACs and bonds are computed with its links, in `netif`):
//!
//! - [`vlan_offload`]: turning off the receive offloads that strip VLAN
//!   tags before XDP sees them, and turning them back on (a pure plan and
//!   its IO shell), over the [`ethtool`] ioctls;
//! - [`kernel_floor`]: refusing, with the minimum version named, a kernel
//!   that lacks what the program needs;
//! - [`capabilities`]: which capabilities the process has, so a permission
//!   error can name the missing one.

pub mod capabilities;
pub mod ethtool;
pub mod kernel_floor;
pub mod vlan_offload;

//! Host links a plugin made and DEL or GC removes by name.

use cni::Error;
use cni_netlink::Netlink;

use crate::KernelResultExt;

/// Deletes the host link `name` if it exists and is of `kind` (a name reused by a link of
/// another kind is not ours and stays), waiting for the kernel. Only DEL without the
/// container's netns and GC come here: a deletion left for after the exit
/// ([`Netlink::delete_link_after_exit`]) would be lost with a process killed after the
/// state that names the link was removed, and nothing would find that host link again.
pub fn delete_host_link_of_kind(name: &str, kind: &str) -> Result<(), Error> {
    let mut host = Netlink::host().cni()?;
    if let Some(link) = host.get_link(name).cni()?
        && link.kind.as_deref() == Some(kind)
    {
        host.delete_link(link.index).cni()?;
    }
    Ok(())
}

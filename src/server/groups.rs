//! Groups on the driver side: who is in which group, kept so that joining,
//! leaving and a member's connection closing each cost O(1) per group,
//! whatever the group's size (10,000 clients leaving one by one must not
//! walk a 10,000-member list each).
//!
//! A group is a `Vec` of members; each connection keeps, for every group
//! it is in, its member's index in that `Vec`. Leaving swaps the last
//! member into the hole and corrects that member's index on its own
//! connection (which is in a handful of groups at most).

use slab::Slab;

use super::conn::Conn;
use super::fanout::FanOut;
use super::Server;
use crate::group::{GroupId, Member};
use crate::request::ConnId;
use crate::sse::SseEvent;

/// One group's members, in no particular order.
struct Group {
    generation: u32,
    members: Vec<Member>,
}

/// Every group of a server.
#[derive(Default)]
pub(crate) struct Groups {
    slots: Slab<Group>,
    generation: u32,
}

impl Groups {
    fn get(&self, id: GroupId) -> Option<&Group> {
        self.slots
            .get(id.slot as usize)
            .filter(|g| g.generation == id.generation)
    }

    fn get_mut(&mut self, id: GroupId) -> Option<&mut Group> {
        self.slots
            .get_mut(id.slot as usize)
            .filter(|g| g.generation == id.generation)
    }
}

/// A connection's place in one group.
pub(crate) struct Membership {
    group: GroupId,
    member: Member,
    /// Where `member` is in the group's list.
    index: usize,
}

/// The live connection `id` names (not a later one in the same slot).
fn conn_of(conns: &mut Slab<Conn>, id: ConnId) -> Option<&mut Conn> {
    conns.get_mut(id.slot as usize).filter(|c| c.id() == id)
}

/// Takes the member at `index` out of group `id`, moving the last member
/// into its place (and telling that member's connection).
fn remove_at(groups: &mut Groups, conns: &mut Slab<Conn>, id: GroupId, index: usize) {
    let Some(group) = groups.get_mut(id) else {
        return;
    };
    if index >= group.members.len() {
        return;
    }
    group.members.swap_remove(index);
    let Some(&moved) = group.members.get(index) else {
        return;
    };
    if let Some(conn) = conn_of(conns, moved.conn()) {
        for m in conn.memberships.iter_mut() {
            if m.group == id && m.member == moved {
                m.index = index;
            }
        }
    }
}

impl Conn {
    /// Whether `member` (which names this connection) can still be sent
    /// to: an open WebSocket, or the stream it names still running.
    fn member_open(&self, member: &Member) -> bool {
        match member {
            Member::Ws(_) => !self.ws_is_closed(),
            Member::Sse(id) => self.sse_open(id.1),
            Member::Stream(id) => self.stream_open(id.1),
        }
    }
}

/// Access to one group, from [`Server::group`]: join, leave, broadcast.
/// Cheap to create: make one per operation
/// (`server.group(room).broadcast_text("hi")`). See
/// [`group`](crate::group) for an example.
pub struct GroupHandle<'a, S> {
    server: &'a mut Server<S>,
    id: GroupId,
}

impl<S> Server<S> {
    /// Makes an empty group and returns its id; see [`group`](crate::group).
    pub fn new_group(&mut self) -> GroupId {
        let groups = &mut self.groups;
        groups.generation = groups.generation.wrapping_add(1);
        let generation = groups.generation;
        let slot = groups.slots.insert(Group {
            generation,
            members: Vec::new(),
        });
        GroupId {
            slot: slot as u32,
            generation,
        }
    }

    /// The group `id`, to join, leave and broadcast to. Works for any id,
    /// even one whose group was removed (then it is empty and cannot be
    /// joined).
    pub fn group(&mut self, id: GroupId) -> GroupHandle<'_, S> {
        GroupHandle { server: self, id }
    }

    /// Adds `member` to group `id`; see [`GroupHandle::join`].
    pub(super) fn group_join(&mut self, id: GroupId, member: Member) -> bool {
        let Server { groups, conns, .. } = self;
        let Some(group) = groups.get_mut(id) else {
            return false;
        };
        let Some(conn) = conn_of(conns, member.conn()) else {
            return false;
        };
        if !conn.member_open(&member) {
            return false;
        }
        if conn
            .memberships
            .iter()
            .any(|m| m.group == id && m.member == member)
        {
            return true;
        }
        conn.memberships.push(Membership {
            group: id,
            member,
            index: group.members.len(),
        });
        group.members.push(member);
        true
    }

    /// Takes `member` out of group `id`; see [`GroupHandle::leave`].
    pub(super) fn group_leave(&mut self, id: GroupId, member: Member) -> bool {
        let Server { groups, conns, .. } = self;
        let Some(conn) = conn_of(conns, member.conn()) else {
            return false;
        };
        let Some(at) = conn
            .memberships
            .iter()
            .position(|m| m.group == id && m.member == member)
        else {
            return false;
        };
        let index = conn.memberships.swap_remove(at).index;
        remove_at(groups, conns, id, index);
        true
    }

    /// Connection `key` closes: it leaves every group it is in.
    pub(super) fn leave_all_groups(&mut self, key: usize) {
        let Server { groups, conns, .. } = self;
        while let Some(m) = conns.get_mut(key).and_then(|c| c.memberships.pop()) {
            remove_at(groups, conns, m.group, m.index);
        }
        if let Some(conn) = conns.get_mut(key) {
            conn.memberships = Vec::new();
        }
    }

    /// A stream on connection `key` ended: its memberships go (the
    /// connection itself may serve more requests).
    pub(super) fn leave_ended_groups(&mut self, key: usize) {
        let Server { groups, conns, .. } = self;
        loop {
            let Some(conn) = conns.get_mut(key) else {
                return;
            };
            let Some(at) = conn
                .memberships
                .iter()
                .position(|m| !conn.member_open(&m.member))
            else {
                return;
            };
            let m = conn.memberships.swap_remove(at);
            remove_at(groups, conns, m.group, m.index);
        }
    }

    /// Runs a broadcast over the members of group `id`, then closes the
    /// members it dropped; returns how many took it.
    fn group_fan_out(
        &mut self,
        id: GroupId,
        send: impl FnOnce(&mut Self, &[Member]) -> FanOut,
    ) -> usize {
        // The list is lent out during the broadcast, which only queues
        // bytes; members over their bound are closed (and leave) after it
        // is back.
        let Some(members) = self
            .groups
            .get_mut(id)
            .map(|g| std::mem::take(&mut g.members))
        else {
            return 0;
        };
        let out = send(self, &members);
        if let Some(group) = self.groups.get_mut(id) {
            group.members = members;
        }
        self.finish_fan_out(out)
    }

    /// Sends a WebSocket message to the WebSocket members of group `id`.
    pub(super) fn group_send(&mut self, id: GroupId, text: bool, payload: &[u8]) -> usize {
        self.group_fan_out(id, |server, members| {
            let ids = members.iter().filter_map(|m| match m {
                Member::Ws(ws) => Some(*ws),
                _ => None,
            });
            server.fan_out_ws(ids, text, payload)
        })
    }

    /// Sends an encoded event to the event-stream members of group `id`.
    pub(super) fn group_event(&mut self, id: GroupId, encoded: &[u8]) -> usize {
        self.group_fan_out(id, |server, members| {
            let ids = members.iter().filter_map(|m| match m {
                Member::Sse(sse) => Some(*sse),
                _ => None,
            });
            server.fan_out_event(ids, encoded)
        })
    }

    /// Sends a chunk to the kept-stream members of group `id`.
    pub(super) fn group_chunk(&mut self, id: GroupId, data: &[u8]) -> usize {
        self.group_fan_out(id, |server, members| {
            let ids = members.iter().filter_map(|m| match m {
                Member::Stream(stream) => Some(*stream),
                _ => None,
            });
            server.fan_out_chunk(ids, data)
        })
    }

    /// Drops group `id`; its members stay connected.
    fn remove_group(&mut self, id: GroupId) {
        let Server { groups, conns, .. } = self;
        let Some(group) = groups.get(id) else {
            return;
        };
        for member in &group.members {
            if let Some(conn) = conn_of(conns, member.conn()) {
                conn.memberships.retain(|m| m.group != id);
            }
        }
        groups.slots.remove(id.slot as usize);
    }
}

impl<S> GroupHandle<'_, S> {
    /// Adds `member` (a [`WsId`](crate::ws::WsId),
    /// [`SseId`](crate::sse::SseId) or [`StreamId`](crate::stream::StreamId))
    /// to the group; returns whether it is a member now (joining twice is
    /// harmless). A closed WebSocket, an ended stream, a stale id or a
    /// removed group cannot be joined: `false`.
    ///
    /// The member leaves by itself when its connection closes or its stream
    /// ends, at the latest at the next poll: [`len`](Self::len) counts open
    /// members only. A WebSocket that closed with received messages the
    /// program has not taken yet leaves too; the program still takes them
    /// with [`WsHandle::receive`](crate::WsHandle::receive) (the socket is
    /// listed in [`Server::ws_ready`](crate::Server::ws_ready) in the poll
    /// that saw it close), for
    /// [`ServerConfig::closed_message_timeout`](crate::ServerConfig::closed_message_timeout).
    pub fn join(&mut self, member: impl Into<Member>) -> bool {
        self.server.group_join(self.id, member.into())
    }

    /// Takes `member` out of the group; returns whether it was in it.
    pub fn leave(&mut self, member: impl Into<Member>) -> bool {
        self.server.group_leave(self.id, member.into())
    }

    /// Whether `member` is in the group.
    pub fn contains(&self, member: impl Into<Member>) -> bool {
        let member = member.into();
        let Some(conn) = self.server.conns.get(member.conn().slot as usize) else {
            return false;
        };
        conn.id() == member.conn()
            && conn
                .memberships
                .iter()
                .any(|m| m.group == self.id && m.member == member)
    }

    /// How many members the group has (of every kind).
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether the group has no member.
    pub fn is_empty(&self) -> bool {
        self.members().is_empty()
    }

    /// The members, in no particular order (it changes as members leave).
    pub fn members(&self) -> &[Member] {
        self.server.groups.get(self.id).map_or(&[], |g| &g.members)
    }

    /// Whether the group exists (it was not removed).
    pub fn exists(&self) -> bool {
        self.server.groups.get(self.id).is_some()
    }

    /// Sends a text message to every WebSocket member; returns how many
    /// accepted it. Encoded once and shared, with the policy of
    /// [`Server::broadcast_text`]: a member over its send bound is
    /// disconnected (and leaves the group) and not counted.
    pub fn broadcast_text(&mut self, text: &str) -> usize {
        self.server.group_send(self.id, true, text.as_bytes())
    }

    /// Sends a binary message to every WebSocket member; returns how many
    /// accepted it. As [`broadcast_text`](Self::broadcast_text).
    pub fn broadcast_binary(&mut self, data: &[u8]) -> usize {
        self.server.group_send(self.id, false, data)
    }

    /// Sends `event` to every event-stream member; returns how many
    /// accepted it (0 for an event that cannot be encoded). Encoded once
    /// and shared, with the policy of [`Server::broadcast_event`].
    pub fn broadcast_event(&mut self, event: &SseEvent<'_>) -> usize {
        let id = self.id;
        self.server
            .with_encoded_event(event, |server, bytes| server.group_event(id, bytes))
    }

    /// Sends `data` as one chunk to every kept-stream member; returns how
    /// many accepted it. Framed once and shared, with the policy of
    /// [`Server::broadcast_chunk`].
    pub fn broadcast_chunk(&mut self, data: &[u8]) -> usize {
        self.server.group_chunk(self.id, data)
    }

    /// Removes the group: its members stay connected, the id names an
    /// empty group from now on.
    pub fn remove(self) {
        self.server.remove_group(self.id);
    }
}

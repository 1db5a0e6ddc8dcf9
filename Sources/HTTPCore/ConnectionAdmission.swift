/// Which connections the server holds, and what to do when a new one arrives: a pure state
/// machine (no sockets, no clock of its own) fed `admit`, `busy`, `idle` and `closed` events with
/// the time, answering which connections to close. The server owns one, under its lock.
///
/// Policy: a connection is *evictable* while it is idle (keep-alive, between requests) or still
/// sending its request; it is *busy* while its request is being answered. At `maxConnections`, or
/// at `maxPerAddress` connections from the new one's address, the connection evictable for the
/// longest time (of that address, for the per-address limit) is closed to make room, so slow or
/// idle clients cannot lock out new ones; the new connection is refused only when nothing can be
/// evicted.
public struct ConnectionAdmission<ID: Hashable> {
    /// What to do with an arriving connection.
    public struct Decision: Equatable {
        /// Connections to close now to make room (they are no longer counted).
        public var evict: [ID]
        /// Refuse the new connection (503): every connection that could make room is busy.
        public var refuse: Bool
        /// A decision.
        public init(evict: [ID], refuse: Bool) { self.evict = evict; self.refuse = refuse }
    }

    /// Most connections counted at once.
    public let maxConnections: Int
    /// Most connections counted from one client address.
    public let maxPerAddress: Int
    private var addressOf: [ID: String] = [:]
    private var perAddress: [String: Int] = [:]
    private var evictableSince: [ID: UInt64] = [:]

    /// An empty table with these limits (at least 1 each).
    public init(maxConnections: Int, maxPerAddress: Int) {
        self.maxConnections = max(1, maxConnections)
        self.maxPerAddress = max(1, maxPerAddress)
    }

    /// Connections counted now.
    public var count: Int { addressOf.count }

    /// A connection from `address` arrived at `now`: evicts what must go and admits it, or refuses it.
    public mutating func admit(_ id: ID, address: String, now: UInt64) -> Decision {
        var evict: [ID] = []
        if (perAddress[address] ?? 0) >= maxPerAddress, let victim = oldestEvictable(address: address) {
            remove(victim)
            evict.append(victim)
        }
        if count >= maxConnections, let victim = oldestEvictable(address: nil) {
            remove(victim)
            evict.append(victim)
        }
        if count >= maxConnections || (perAddress[address] ?? 0) >= maxPerAddress {
            return Decision(evict: evict, refuse: true)
        }
        addressOf[id] = address
        perAddress[address, default: 0] += 1
        evictableSince[id] = now
        return Decision(evict: evict, refuse: false)
    }

    /// The connection's request is complete and being answered: it is not evicted.
    public mutating func busy(_ id: ID) {
        evictableSince[id] = nil
    }

    /// The connection is idle again (waiting for its next request) from `now`.
    public mutating func idle(_ id: ID, now: UInt64) {
        if addressOf[id] != nil { evictableSince[id] = now }
    }

    /// The connection closed (missing ids, e.g. already evicted, are ignored).
    public mutating func closed(_ id: ID) {
        remove(id)
    }

    private mutating func remove(_ id: ID) {
        evictableSince[id] = nil
        guard let address = addressOf.removeValue(forKey: id) else { return }
        let left = (perAddress[address] ?? 1) - 1
        perAddress[address] = left > 0 ? left : nil
    }

    private func oldestEvictable(address: String?) -> ID? {
        var oldest: (id: ID, since: UInt64)?
        for (id, since) in evictableSince where address == nil || addressOf[id] == address {
            if oldest == nil || since < oldest!.since { oldest = (id, since) }
        }
        return oldest?.id
    }
}

import CEpoll
import Foundation
import Glibc

/// What an event loop calls when a registered socket becomes ready; runs on the loop's thread.
protocol EventLoopHandler: AnyObject {
    /// The socket's readiness changed: `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP, EPOLLERR).
    func socketReady(_ events: UInt32)
}

/// One thread waiting in `epoll_wait` for the sockets registered with it, calling each socket's
/// handler on that thread. Sockets are registered once, edge-triggered for reading and writing, so
/// readiness costs no re-arming: each edge is reported once, and the handler must drain (or remember)
/// what it was told. Registration and deregistration may come from any thread.
final class EventLoop: @unchecked Sendable {
    private let epollFD: Int32
    /// Written to wake the thread for `stop()`.
    private let wakeFD: Int32
    private let lock = NSLock()
    /// Handlers by registration id (the epoll event carries the id, never a pointer, so an event that
    /// arrives after deregistration finds nothing instead of a freed object).
    private var handlers: [UInt64: EventLoopHandler] = [:]
    private var stopping = false
    private static let wakeID = UInt64.max
    private var thread: Thread?

    init(name: String) throws {
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw HTTPServerError.socket("epoll_create1 failed: \(String(cString: strerror(errno)))") }
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else {
            let e = errno
            Glibc.close(epollFD)
            throw HTTPServerError.socket("eventfd failed: \(String(cString: strerror(e)))")
        }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = Self.wakeID
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            let e = errno
            Glibc.close(wakeFD)
            Glibc.close(epollFD)
            throw HTTPServerError.socket("epoll_ctl failed: \(String(cString: strerror(e)))")
        }
        let thread = Thread { [self] in
            _ = stylist_name_current_thread(name)   // seen in top, perf and /proc
            run()
        }
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    // The descriptors close only when nobody can use them any more (connections keep their loop), so a
    // late deregistration never reaches a reused descriptor number.
    deinit {
        Glibc.close(wakeFD)
        Glibc.close(epollFD)
    }

    /// Watches `fd` for reading and writing (edge-triggered) and reports to `handler` under `id`
    /// (unique for the loop's lifetime). The socket's current readiness is reported at once.
    func register(fd: Int32, id: UInt64, handler: EventLoopHandler) -> Bool {
        lock.lock()
        handlers[id] = handler
        lock.unlock()
        var event = epoll_event()
        event.events = EPOLLIN.rawValue | EPOLLOUT.rawValue | EPOLLRDHUP.rawValue | EPOLLET.rawValue
        event.data.u64 = id
        if epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) != 0 {
            lock.lock()
            handlers[id] = nil
            lock.unlock()
            return false
        }
        return true
    }

    /// Stops watching `fd`; call before closing it. Events already taken for `id` find no handler.
    func deregister(fd: Int32, id: UInt64) {
        lock.lock()
        handlers[id] = nil
        lock.unlock()
        var event = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
    }

    /// Ends the thread after the events it is handling (registered sockets are left alone).
    func stop() {
        lock.lock()
        stopping = true
        lock.unlock()
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func run() {
        let capacity = 256
        let events = UnsafeMutablePointer<epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        var ready: [(EventLoopHandler, UInt32)] = []
        ready.reserveCapacity(capacity)
        while true {
            let n = epoll_wait(epollFD, events, Int32(capacity), -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            lock.lock()
            if stopping { lock.unlock(); return }
            for i in 0..<Int(n) {
                let event = events[i]
                if event.data.u64 == Self.wakeID { continue }
                if let handler = handlers[event.data.u64] { ready.append((handler, event.events)) }
            }
            lock.unlock()
            for (handler, mask) in ready { handler.socketReady(mask) }
            ready.removeAll(keepingCapacity: true)
        }
    }
}

/// The server's event loops: each new connection goes to the next one in turn.
final class EventLoopGroup: @unchecked Sendable {
    let loops: [EventLoop]
    private let lock = NSLock()
    private var nextIndex = 0

    /// `count` loops (at least one), each with its own thread.
    init(count: Int) throws {
        var loops: [EventLoop] = []
        for i in 0..<max(1, count) {
            do {
                loops.append(try EventLoop(name: "stylist-loop-\(i)"))
            } catch {
                for loop in loops { loop.stop() }
                throw error
            }
        }
        self.loops = loops
    }

    /// The loop for the next connection (round-robin).
    func next() -> EventLoop {
        lock.lock()
        defer { lock.unlock() }
        nextIndex = (nextIndex + 1) % loops.count
        return loops[nextIndex]
    }

    /// Stops every loop's thread.
    func stop() {
        for loop in loops { loop.stop() }
    }
}

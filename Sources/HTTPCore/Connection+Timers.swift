#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import Logging

/// The connection's one timer, armed for whichever deadline applies now (head, body, idle, write,
/// linger). The dispatch timer is moved only when a deadline comes earlier than the time it is set
/// for; a later deadline is picked up when it fires early, so keep-alive traffic, which moves the
/// deadline on every request, seldom reprograms it.
extension Connection {
    func arm(_ kind: TimerKind, seconds: Double) {
        guard phase != .closed else { return }
        timerKind = kind
        let deadline = Self.now() + UInt64(max(0.001, seconds) * 1e9)
        timerDeadline = deadline
        if deadline < timerFiresAt {
            timerFiresAt = deadline
            timer.schedule(deadline: DispatchTime(uptimeNanoseconds: deadline))
        }
    }

    /// No deadline applies; the timer may still fire, and then does nothing.
    func cancelTimer() {
        guard phase != .closed else { return }
        timerKind = .none
    }

    func onTimer() {
        guard phase != .closed else { return }
        timerFiresAt = .max
        guard timerKind != .none else { return }
        if Self.now() < timerDeadline {
            timerFiresAt = timerDeadline
            timer.schedule(deadline: DispatchTime(uptimeNanoseconds: timerDeadline))
            return
        }
        let kind = timerKind
        timerKind = .none
        switch kind {
        case .none:
            break
        case .header:
            if handshaking || (phase != .head && phase != .body) { close(); return }
            logger.info("request head timeout", metadata: ["remote": "\(remote)"])
            sendError(HTTPParserError(status: 408, detail: "The request head was not received within \(formatSeconds(config.headerTimeout)) seconds."))
        case .body:
            switch bodyDeadline?.verdict(now: Self.now()) ?? .stalled {
            case .stalled:
                logger.info("request body timeout", metadata: ["remote": "\(remote)"])
                sendError(HTTPParserError(status: 408, detail: "The request body stalled for \(formatSeconds(config.bodyTimeout)) seconds."))
            case .tooSlow:
                logger.info("request body too slow", metadata: ["remote": "\(remote)", "bytes": "\(bodyDeadline?.bytes ?? 0)"])
                sendError(HTTPParserError(status: 408, detail: "The request body arrives slower than \(config.minBodyBytesPerSecond) bytes per second."))
            case .checkAgain(let seconds):
                arm(.body, seconds: seconds)
            }
        case .idle, .linger:
            close()
        case .write:
            // An event stream is slow by nature: only its stalls count (its buffer is bounded too).
            switch responseDeadline?.verdict(now: Self.now(), checkRate: !streaming) ?? .stalled {
            case .stalled:
                logger.info("response write stalled; closing", metadata: ["remote": "\(remote)"])
                close()
            case .tooSlow:
                logger.info("response read too slowly; closing", metadata: ["remote": "\(remote)", "bytes": "\(responseDeadline?.bytes ?? 0)"])
                close()
            case .checkAgain(let seconds):
                arm(.write, seconds: seconds)
            }
        }
    }
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}

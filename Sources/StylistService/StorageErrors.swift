import HTTPCore
import Jobs

/// The job and blob stores' errors keep their errno, so a full disk is answered 507.
extension StorageError: ErrnoCarrying {
    public var errnoCode: Int32 { code }
}

// libFuzzer target for the PyTorch checkpoint reader of `stylist convert-weights` (built only
// with STYLIST_FUZZ=1; see FUZZING.md).
//
// The whole input is a checkpoint for `TorchCheckpoint(bytes:name:)` (zip format or legacy
// pickle, chosen by the reader from the magic bytes). For every checkpoint it accepts, every
// tensor is read with `floats()` (float32 ones must succeed) and looked up by name. Invariants:
// no trap, no ASan report, as many values as the shape's product.
import Checkpoints

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let checkpoint = try? TorchCheckpoint(bytes: bytes, name: "fuzz") else { return 0 }
    check(checkpoint.keys.count == checkpoint.tensors.count, "keys and tensors disagree")
    for (name, tensor) in checkpoint.tensors {
        check(tensor.shape.allSatisfy { $0 >= 0 }, "tensor \(name): negative size \(tensor.shape)")
        check(checkpoint[name] != nil, "tensor \(name) not found by name")
        do {
            let values = try tensor.floats()
            check(values.count == tensor.count, "tensor \(name): \(values.count) values for shape \(tensor.shape)")
        } catch {
            check(tensor.dtype != .float32, "tensor \(name): float32 but floats() threw \(error)")
        }
    }
    return 0
}

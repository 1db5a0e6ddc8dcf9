// libFuzzer target for the safetensors reader (built only with STYLIST_FUZZ=1; see FUZZING.md).
//
// The whole input is a file for `SafeTensors(bytes:)`. For every file it accepts, every entry
// is read with `floats` (with and without the expected shape) and checked: as many values as the
// shape's product, offsets inside the data section. Invariants: no trap, no ASan report.
import Models

@inline(never)
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant violated: \(message())") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let file = try? SafeTensors(bytes: bytes, name: "fuzz") else { return 0 }
    for (name, entry) in file.entries {
        check(entry.dtype == "F32", "accepted dtype \(entry.dtype)")
        check(entry.offsets.lowerBound >= 0 && entry.offsets.upperBound <= size, "offsets \(entry.offsets) outside a \(size)-byte file")
        let count = entry.shape.reduce(1, *)
        check(entry.offsets.count == 4 * count, "offsets \(entry.offsets) for shape \(entry.shape)")
        do {
            let values = try file.floats(name)
            check(values.count == count, "\(values.count) values for shape \(entry.shape)")
            let again = try file.floats(name, shape: entry.shape)
            check(again.count == count, "\(again.count) values for shape \(entry.shape) (with shape)")
            let shape = try file.shape(name)
            check(shape == entry.shape, "shape() disagrees with the entry")
        } catch {
            check(false, "floats(\(name)) threw \(error) for an accepted entry")
        }
    }
    return 0
}

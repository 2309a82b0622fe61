import Foundation

/// Quotas' windows are aligned to the epoch: an hourly quota starts counting again on the hour.
public enum QuotaWindows {
    /// For a test that counts an hourly quota down exactly: waits for the hour to turn if it
    /// turns within `margin`, so the count does not start again halfway.
    public static func clearOfHourTurn(margin: TimeInterval = 30) async throws {
        let intoHour = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 3600)
        if intoHour > 3600 - margin { try await Task.sleep(for: .seconds(3600 - intoHour + 1)) }
    }
}

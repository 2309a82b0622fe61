import Domain
import EventLog
import Logging
import Projectors

/// Command runners for the pet and config streams.
public enum PetCommands {
    public static func runner(logger: Logger) -> CommandRunner<Pet> {
        CommandRunner(streamType: PetEventCoding.streamType, encode: PetEventCoding.encode, decode: PetEventCoding.decode, logger: logger)
    }
}

public enum ConfigCommands {
    public static func runner(logger: Logger) -> CommandRunner<TenantConfig> {
        CommandRunner(streamType: ConfigEventCoding.streamType, encode: ConfigEventCoding.encode, decode: ConfigEventCoding.decode, logger: logger)
    }
}

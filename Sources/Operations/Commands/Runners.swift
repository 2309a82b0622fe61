import Domain
import EventLog
import Projectors
import Tenancy

/// Command runners for the pet, config and tenant streams.
public enum PetCommands {
    public static func runner(store: EventStore) -> CommandRunner<Pet> {
        CommandRunner(streamType: PetEventCoding.streamType, encode: PetEventCoding.encode, decode: PetEventCoding.decode, store: store)
    }
}

public enum ConfigCommands {
    public static func runner(store: EventStore) -> CommandRunner<TenantConfig> {
        CommandRunner(streamType: ConfigEventCoding.streamType, encode: ConfigEventCoding.encode, decode: ConfigEventCoding.decode, store: store)
    }
}

extension Tenant {
    public static func runner(store: EventStore) -> CommandRunner<Tenant> {
        CommandRunner(streamType: Catalog.tenantStreamType, encode: TenantEventCoding.encode, decode: TenantEventCoding.decode, store: store,
                      seal: PersonalData.seal, reveal: PersonalData.reveal)
    }
}

import Domain
import EventLog

extension PetRegistered: EventPayload {}
extension PetRenamed: EventPayload {}
extension PetDetailsChanged: EventPayload {}
extension PetRemoved: EventPayload {}
extension PetRestored: EventPayload {}
extension ConfigValueSet: EventPayload {}
extension ConfigValueUnset: EventPayload {}

/// Between the pet and config deciders' events and the log's.
public enum PetEventCoding {
    public static let streamType = "pet"

    public static let registry: EventTypeRegistry = {
        var registry = EventTypeRegistry()
        registry.register(PetRegistered.self)
        registry.register(PetRenamed.self)
        registry.register(PetDetailsChanged.self)
        registry.register(PetRemoved.self)
        registry.register(PetRestored.self)
        return registry
    }()

    public static func encode(_ event: PetEvent) throws(EventLogError) -> NewEvent {
        switch event {
        case .registered(let event): try NewEvent(event)
        case .renamed(let event): try NewEvent(event)
        case .detailsChanged(let event): try NewEvent(event)
        case .removed(let event): try NewEvent(event)
        case .restored(let event): try NewEvent(event)
        }
    }

    public static func decode(_ recorded: RecordedEvent) throws(EventLogError) -> PetEvent {
        switch try registry.decode(recorded) {
        case let event as PetRegistered: .registered(event)
        case let event as PetRenamed: .renamed(event)
        case let event as PetDetailsChanged: .detailsChanged(event)
        case let event as PetRemoved: .removed(event)
        case let event as PetRestored: .restored(event)
        default: throw EventLogError(.unknownEventType, "\(recorded.type) is not a pet event")
        }
    }
}

public enum ConfigEventCoding {
    public static let streamType = "config"

    public static let registry: EventTypeRegistry = {
        var registry = EventTypeRegistry()
        registry.register(ConfigValueSet.self)
        registry.register(ConfigValueUnset.self)
        return registry
    }()

    public static func encode(_ event: TenantConfigEvent) throws(EventLogError) -> NewEvent {
        switch event {
        case .set(let event): try NewEvent(event)
        case .unset(let event): try NewEvent(event)
        }
    }

    public static func decode(_ recorded: RecordedEvent) throws(EventLogError) -> TenantConfigEvent {
        switch try registry.decode(recorded) {
        case let event as ConfigValueSet: .set(event)
        case let event as ConfigValueUnset: .unset(event)
        default: throw EventLogError(.unknownEventType, "\(recorded.type) is not a config event")
        }
    }
}

import Domain
import EventLog
import Tenancy

extension TenantCreated: EventPayload {}
extension TenantActivated: EventPayload {}
extension PlanChanged: EventPayload {}
extension TenantSuspended: EventPayload {}
extension TenantReactivated: EventPayload {}
extension UserAdded: EventPayload {}
extension ApiKeyIssued: EventPayload {}
extension ApiKeyRevoked: EventPayload {}
extension OffboardingRequested: EventPayload {}
extension UserErased: EventPayload {}

/// Between the tenant decider's events and the log's.
public enum TenantEventCoding {
    public static let registry: EventTypeRegistry = {
        var registry = EventTypeRegistry()
        registry.register(TenantCreated.self)
        registry.register(TenantActivated.self)
        registry.register(PlanChanged.self)
        registry.register(TenantSuspended.self)
        registry.register(TenantReactivated.self)
        registry.register(UserAdded.self)
        registry.register(ApiKeyIssued.self)
        registry.register(ApiKeyRevoked.self)
        registry.register(OffboardingRequested.self)
        registry.register(UserErased.self)
        return registry
    }()

    public static func encode(_ event: TenantEvent) throws(EventLogError) -> NewEvent {
        switch event {
        case .created(let event): try NewEvent(event)
        case .activated(let event): try NewEvent(event)
        case .planChanged(let event): try NewEvent(event)
        case .suspended(let event): try NewEvent(event)
        case .reactivated(let event): try NewEvent(event)
        case .userAdded(let event): try NewEvent(event)
        case .apiKeyIssued(let event): try NewEvent(event)
        case .apiKeyRevoked(let event): try NewEvent(event)
        case .offboardingRequested(let event): try NewEvent(event)
        case .userErased(let event): try NewEvent(event)
        }
    }

    public static func decode(_ recorded: RecordedEvent) throws(EventLogError) -> TenantEvent {
        switch try registry.decode(recorded) {
        case let event as TenantCreated: .created(event)
        case let event as TenantActivated: .activated(event)
        case let event as PlanChanged: .planChanged(event)
        case let event as TenantSuspended: .suspended(event)
        case let event as TenantReactivated: .reactivated(event)
        case let event as UserAdded: .userAdded(event)
        case let event as ApiKeyIssued: .apiKeyIssued(event)
        case let event as ApiKeyRevoked: .apiKeyRevoked(event)
        case let event as OffboardingRequested: .offboardingRequested(event)
        case let event as UserErased: .userErased(event)
        default: throw EventLogError(.unknownEventType, "\(recorded.type) is not a tenant event")
        }
    }
}

import API
@testable import Operations
import Database
import Domain
import EventLog
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PetstoreTesting
import PostgresNIO
import Tenancy
import Testing

@Suite struct OnboardingTests {
    func create(_ client: some TestClientProtocol, _ app: TestApp, body: String) async throws -> (HTTPResponse.Status, String) {
        try await client.execute(uri: "/api/admin/tenants", method: .post,
                                 headers: [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                 body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
    }

    @Test func `onboarding answers 201 with the tenant and a working admin key, and provisions everything`() async throws {
        try await withApp { app, client in
            let (status, body) = try await create(client, app, body: #"{"slug":"acme-pets","name":"Acme Pets","plan":"basic"}"#)
            #expect(status == .created)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let tenant = try #require(json["tenant"] as? [String: Any])
            #expect(tenant["slug"] as? String == "acme-pets" && tenant["plan"] as? String == "basic" && tenant["status"] as? String == "active")
            let key = try #require(json["admin_api_key"] as? String)
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "acme-pets")) { response in
                #expect(response.status == .ok)
            }
            // Activation is in the log like every other change, last.
            for type in ["TenantCreated", "UserAdded", "ApiKeyIssued", "PetRegistered", "ConfigValueSet", "TenantActivated"] {
                #expect(try await app.events(of: type, tenant: "acme-pets").count == 1, "\(type)")
            }
            let record = try #require(try await app.catalog.tenant(slug: "acme-pets"))
            #expect(try await app.store.read(tenant: record.id, limit: 100).last?.type == "TenantActivated")
            let outbox = try await scalar(app.database.superuserURL,
                "SELECT count(*) FROM outbox WHERE tenant_id = \(record.id.rawValue) AND kind = 'welcome'", as: Int64.self)
            #expect(outbox == 1)
        }
    }

    @Test func `missing fields are 400, invalid or reserved slugs and plans are 422, a taken slug is 409`() async throws {
        try await withApp { app, client in
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","plan":"free"}"#).0 == .badRequest)
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","name":1,"plan":"free"}"#).0 == .badRequest)
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","name":"A","plan":"free","extra":1}"#).0 == .badRequest)
            #expect(try await create(client, app, body: #"["acme"]"#).0 == .badRequest)
            #expect(try await create(client, app, body: #"{"slug": "acme""#).0 == .badRequest)
            for slug in ["admin", "api", "www", "Acme", "acme.pets", "-acme", "a", String(repeating: "a", count: 64), "ácme", "robert'); drop table tenants;--"] {
                let (status, body) = try await create(client, app, body: #"{"slug":"\#(slug)","name":"A","plan":"free"}"#)
                #expect(status == .unprocessableContent, "\(slug): \(body)")
                #expect(body.contains("\"field\":\"slug\""))
            }
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","name":"A","plan":"platinum"}"#).0 == .unprocessableContent)
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","name":"A","plan":"free"}"#).0 == .created)
            #expect(try await create(client, app, body: #"{"slug":"acme-pets","name":"B","plan":"free"}"#).0 == .conflict)
            #expect(try await app.catalog.tenants().count == 1, "nothing but the one tenant was written")
        }
    }

    @Test func `a bad admin email is a 422 that takes no slug, and a quote in a good one reaches the welcome message`() async throws {
        try await withApp { app, client in
            for email in ["not-an-email", "a b@acme.test", "a@b@c", " "] {
                let (status, body) = try await create(client, app, body: #"{"slug":"acme-pets","name":"A","plan":"free","admin_email":"\#(email)"}"#)
                #expect(status == .unprocessableContent, "\(email): \(body)")
                #expect(body.contains("\"field\":\"admin_email\""), "\(body)")
            }
            #expect(try await app.catalog.tenants().isEmpty, "a refused onboarding leaves no tenant behind")
            let (status, body) = try await create(client, app, body: #"{"slug":"acme-pets","name":"A","plan":"free","admin_email":" O\"Brien@Acme.test "}"#)
            #expect(status == .created, "\(body)")
            #expect(try await app.catalog.tenant(slug: "acme-pets")?.status == .active)
            let record = try #require(try await app.catalog.tenant(slug: "acme-pets"))
            let to = try await scalar(app.database.superuserURL,
                "SELECT payload->>'to' FROM outbox WHERE tenant_id = \(record.id.rawValue) AND kind = 'welcome'", as: String.self)
            #expect(to == #"o"brien@acme.test"#)
        }
    }

    @Test func `twenty concurrent onboardings of one slug give exactly one 201`() async throws {
        try await withApp(poolSize: 24) { app, client in
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for index in 0..<20 {
                    group.addTask { try await create(client, app, body: #"{"slug":"race-pets","name":"Racer \#(index)","plan":"free"}"#).0 }
                }
                return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .created }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 19, "\(statuses)")
            #expect(try await app.events(of: "TenantCreated", tenant: "race-pets").count == 1)
        }
    }

    @Test func `provisioning stopped between two steps resumes and finishes once`() async throws {
        try await withApp(.router) { app, _ in
            struct Crash: Error {}
            let crashing = Provisioner(catalog: app.catalog, logger: TestCluster.logger) { step in
                if step == .defaultConfig { throw Crash() }
            }
            let record = try await app.dependencies.tenants.create(slug: "crashy", name: "Crashy", plan: .free, metadata: .init(actor: "test"))
            await #expect(throws: Crash.self) { try await crashing.provision(record, adminEmail: "a@crashy.test", metadata: .init()) }
            #expect(try await app.catalog.tenant(slug: "crashy")?.status == .provisioning, "not served until provisioned")

            try await app.dependencies.provisioner.resumeAll()
            try await app.dependencies.provisioner.resumeAll()
            #expect(try await app.catalog.tenant(slug: "crashy")?.status == .active)
            for type in ["TenantCreated", "UserAdded", "ApiKeyIssued", "PetRegistered", "ConfigValueSet", "TenantActivated"] {
                #expect(try await app.events(of: type, tenant: "crashy").count == 1, "\(type) once")
            }
            let welcome = try await scalar(app.database.superuserURL,
                "SELECT count(*) FROM outbox WHERE tenant_id = \(record.id.rawValue)", as: Int64.self)
            #expect(welcome == 1)
        }
    }

    @Test func `onboarding the same slug again while its first run is unfinished resumes it and hands out a working admin key`() async throws {
        try await withApp(.router) { app, client in
            struct Crash: Error {}
            let crashing = Provisioner(catalog: app.catalog, logger: TestCluster.logger) { step in
                if step == .samplePet { throw Crash() }
            }
            // The first run stops after the admin and its key were made: the key never reached anyone.
            await #expect(throws: Crash.self) {
                try await Onboarding(catalog: app.catalog, provisioner: crashing).run(
                    slug: "half-made", name: "Half", plan: .premium, placement: .schema, adminEmail: "boss@half.test", metadata: .init(actor: "test"))
            }
            #expect(try await app.catalog.tenant(slug: "half-made")?.status == .provisioning)
            let halfMade = try #require(try await app.catalog.tenant(slug: "half-made"))
            let undelivered = try #require(try await app.dependencies.tenants.state(of: halfMade.id)?.apiKeys.values.first)

            // Other settings for that slug are still a taken slug.
            let other = try await create(client, app, body: #"{"slug":"half-made","name":"Half","plan":"free"}"#)
            #expect(other.0 == .conflict, "\(other.1)")
            let (status, body) = try await create(client, app, body: #"{"slug":"half-made","name":"Half","plan":"premium","placement":"schema"}"#)
            #expect(status == .created, "\(body)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let key = try #require(json["admin_api_key"] as? String)
            #expect((json["tenant"] as? [String: Any])?["status"] as? String == "active")
            let tenant = try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "half-made")) { $0.status }
            #expect(tenant == .ok)
            let state = try #require(try await app.dependencies.tenants.state(of: halfMade.id))
            #expect(state.activeAdminKeys.count == 1, "the undelivered key is revoked")
            #expect(state.apiKeys[undelivered.id]?.revoked == true)
            for type in ["TenantCreated", "PetRegistered", "ConfigValueSet", "TenantActivated"] {
                #expect(try await app.events(of: type, tenant: "half-made").count == 1, "\(type) once")
            }
            // Once finished, the slug is taken like any other.
            #expect(try await create(client, app, body: #"{"slug":"half-made","name":"Half","plan":"premium","placement":"schema"}"#).0 == .conflict)
        }
    }

    @Test func `onboarding a slug whose first run is still going waits for it, and is then a 409 that leaves its key working`() async throws {
        try await withApp(.router) { app, client in
            // The first run dawdles after making the admin and its key, as a slow server would.
            let slow = Provisioner(catalog: app.catalog, logger: TestCluster.logger) { step in
                if step == .samplePet { usleep(1_000_000) }
            }
            let first = Task {
                try await Onboarding(catalog: app.catalog, provisioner: slow, lockURL: app.database.ownerURL).run(
                    slug: "slow-pets", name: "Slow", plan: .premium, placement: .schema, adminEmail: "boss@slow.test", metadata: .init(actor: "test"))
            }
            var seen: TenantRecord?
            for _ in 0..<200 where seen == nil {
                app.catalog.invalidate(slug: "slow-pets")
                seen = try await app.catalog.tenant(slug: "slow-pets")
                if seen == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(seen?.status == .provisioning, "the second request arrives while the first is provisioning")

            let (status, body) = try await create(client, app, body: #"{"slug":"slow-pets","name":"Slow","plan":"premium","placement":"schema"}"#)
            #expect(status == .conflict, "not a resumption beside the first run: \(body)")
            let outcome = try await first.value
            let key = try #require(outcome.adminKey?.value)
            #expect(!outcome.resumed)
            let tenant = try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "slow-pets")) { $0.status }
            #expect(tenant == .ok, "the first run's key was not revoked by the second")
            let state = try #require(try await app.dependencies.tenants.state(of: outcome.tenant.id))
            #expect(state.activeAdminKeys.count == 1 && state.apiKeys.count == 1)
        }
    }

    @Test func `a placement the plan may not use is a 422 that takes no slug`() async throws {
        try await withApp(.router) { app, client in
            let (status, body) = try await create(client, app, body: #"{"slug":"too-cheap","name":"Cheap","plan":"free","placement":"schema"}"#)
            #expect(status == .unprocessableContent && body.contains(#""field":"placement""#), "\(body)")
            #expect(try await app.catalog.tenant(slug: "too-cheap") == nil)
        }
    }

    @Test func `the outbox dispatcher delivers the welcome message once`() async throws {
        try await withApp(.router) { app, client in
            _ = try await app.onboard(client, slug: "welcomed")
            actor Collected: OutboxSink {
                var messages: [(String, String)] = []
                func deliver(id: Int64, tenant: TenantID?, kind: String, payload: String) async throws { messages.append((kind, payload)) }
            }
            let sink = Collected()
            let dispatcher = OutboxDispatcher(client: app.dependencies.client, sink: sink, logger: TestCluster.logger)
            #expect(try await dispatcher.dispatchBatch() == 1)
            #expect(try await dispatcher.dispatchBatch() == 0)
            let messages = await sink.messages
            #expect(messages.count == 1 && messages[0].0 == "welcome" && messages[0].1.contains("welcomed"))
        }
    }

    @Test func `plan and status change at runtime, and a suspended tenant is told so`() async throws {
        try await withApp { app, client in
            let key = try await app.onboard(client, slug: "changing")
            func patch(_ body: String) async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/api/admin/tenants/changing", method: .patch,
                                         headers: [.authorization: "Bearer \(app.platformKey)", .contentType: "application/json"],
                                         body: ByteBuffer(string: body)) { $0.status }
            }
            #expect(try await patch(#"{"plan":"premium"}"#) == .ok)
            #expect(try await patch(#"{"plan":"gold"}"#) == .unprocessableContent)
            #expect(try await patch(#"{"plan":null}"#) == .badRequest, "a plan cannot be cleared")
            #expect(try await patch(#"{"status":null}"#) == .badRequest)
            #expect(try await patch(#"{"status":"suspended"}"#) == .ok)
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "changing")) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("tenant-suspended"))
            }
            #expect(try await patch(#"{"status":"active"}"#) == .ok)
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "changing")) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains("\"plan\":\"premium\""))
            }
            #expect(try await app.events(of: "PlanChanged", tenant: "changing").count == 1)
            #expect(try await app.events(of: "TenantSuspended", tenant: "changing").count == 1)
            try await client.execute(uri: "/api/admin/tenants/changing", method: .delete, headers: headers(app.platformKey)) { response in
                #expect(response.status == .accepted)
                #expect(String(buffer: response.body).contains("\"status\":\"offboarding\""))
            }
            try await client.execute(uri: "/api/tenant", method: .get, headers: headers(key, tenant: "changing")) { response in
                #expect(response.status == .forbidden)
            }
        }
    }
}


@Suite struct FileOutboxSinkTests {
    @Test func `the default sink writes one file per message`() async throws {
        let directory = FileManager.default.temporaryDirectory.appending(path: "petstore-outbox-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let sink = FileOutboxSink(directory: directory, logger: TestCluster.logger)
        try await sink.deliver(id: 7, tenant: TenantID(), kind: "welcome", payload: #"{"to":"a@b.test"}"#)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(files == ["000000000007-welcome.json"])
        #expect(try String(contentsOf: directory.appending(path: files[0]), encoding: .utf8) == #"{"to":"a@b.test"}"#)
    }
}

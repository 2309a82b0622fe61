import Foundation
import PackagePlugin

/// Embeds the package's SQL folders into the targets that own them:
/// `Schema/` into `Database`, `Projections/` into `Projectors`.
@main
struct EmbedSQLPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let (folder, enumName): (String, String)
        switch target.name {
        case "Database": (folder, enumName) = ("Schema", "EmbeddedSchema")
        case "Projectors": (folder, enumName) = ("Projections", "EmbeddedProjections")
        default: return []
        }
        let directory = context.package.directoryURL.appending(path: folder)
        let files = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
        let inputs = files.filter { $0.pathExtension == "sql" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
        let output = context.pluginWorkDirectoryURL.appending(path: "\(enumName).swift")
        return [
            .buildCommand(
                displayName: "Embedding \(folder)/ into \(target.name)",
                executable: try context.tool(named: "EmbedSQL").url,
                arguments: [output.path(), enumName] + inputs.map { $0.path() },
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}

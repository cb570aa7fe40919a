export * from "./schema";
export { formatPath, validateConfig, type ValidateOptions } from "./validate";
export {
  loadConfig,
  parseConfigDocument,
  parseConfigLocation,
  parseConfigText,
  type ConfigClients,
  type ConfigLocation,
} from "./load";

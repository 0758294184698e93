export declare const MODELS_DIR: string;
export interface ManifestFile { path: string; bytes: number; sha256: string; from?: string; derivedFrom?: string; derive?: "vocabulary" | "int8"; source?: string }
export interface ManifestModel { name: string; description: string; package: string; version: string; licence: string; files: ManifestFile[] }
export declare function readManifest(): { models: ManifestModel[] };
export declare function fileProblem(file: ManifestFile, dir?: string): string | null;
export declare function modelProblems(name: string, dir?: string): string[];

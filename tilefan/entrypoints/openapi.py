"""The OpenAPI 3 description served at ``GET /openapi.json``."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB = {"$ref": "#/components/schemas/Job"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "invalid input", 404: "unknown job", 409: "not in a state that allows this",
            413: "request body too large"}
    return {str(c): _json(_ERROR, text[c]) for c in codes}


def openapi_document() -> dict[str, Any]:
    matrix = {
        "oneOf": [
            {"type": "object", "required": ["file"], "properties": {"file": {"type": "string"}}},
            {
                "type": "object",
                "required": ["shape"],
                "properties": {
                    "shape": {"oneOf": [{"type": "string", "example": "3000x2000"},
                                        {"type": "array", "items": {"type": "integer", "minimum": 1}}]},
                    "seed": {"type": "integer", "minimum": 0},
                    "dtype": {"enum": ["float32", "float64"]},
                },
            },
        ]
    }
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "tilefan", "version": "0.1.0",
                 "description": "Run big numeric jobs as a tiled fan-out: matmul, add and atoms."},
        "paths": {
            "/jobs": {
                "post": {
                    "summary": "Submit a job",
                    "requestBody": {"required": True, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/JobSpec"}}}},
                    "responses": {"202": _json(_JOB, "accepted"), **_errors(400, 413)},
                },
                "get": {
                    "summary": "Recent jobs, newest first",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json({"type": "object", "properties": {
                        "jobs": {"type": "array", "items": _JOB},
                        "next_cursor": {"type": "string", "nullable": True}}}, "a page of jobs"),
                        **_errors(400)},
                },
            },
            "/jobs/{job_id}": {
                "get": {"summary": "Status, progress, ETA, timings and result", "parameters": [job_id],
                        "responses": {"200": _json(_JOB, "the job"), **_errors(404)}},
                "delete": {"summary": "Cancel a queued or running job", "parameters": [job_id],
                           "responses": {"200": _json(_JOB, "cancelled"), **_errors(404, 409)}},
            },
            "/jobs/{job_id}/report": {
                "get": {"summary": "Per-tile timings, routes and workers, with a summary", "parameters": [job_id],
                        "responses": {"200": _json({"type": "object"}, "the report"), **_errors(404)}},
            },
            "/uploads": {
                "post": {
                    "summary": "Get a URL to PUT an input file to",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {
                        "type": "object", "required": ["filename"],
                        "properties": {"filename": {"type": "string", "example": "A.npy"}}}}}},
                    "responses": {"201": _json({"type": "object", "properties": {
                        "upload_id": {"type": "string"}, "key": {"type": "string"}, "url": {"type": "string"},
                        "method": {"type": "string"}, "expires_in": {"type": "integer"}}}, "upload target"),
                        **_errors(400)},
                },
            },
            "/uploads/{upload_id}/{name}": {
                "put": {
                    "summary": "Embedded backend: the upload URL POST /uploads hands out (on AWS, S3's)",
                    "parameters": [
                        {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    ],
                    "requestBody": {"required": True, "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"201": _json({"type": "object", "properties": {
                        "key": {"type": "string"}, "bytes": {"type": "integer"}}}, "stored"), **_errors(400)},
                },
            },
            "/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": _json({"type": "object"}, "OpenAPI 3")}}},
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                                   "field": {"type": "string"}}}}},
                "JobSpec": {
                    "type": "object",
                    "required": ["kind"],
                    "properties": {
                        "kind": {"enum": ["matmul", "add", "atoms"]},
                        "a": matrix, "b": matrix,
                        "seed": {"type": "integer", "minimum": 0},
                        "dtype": {"enum": ["float32", "float64"]},
                        "out": {"type": "string"},
                        "tile": {"type": "integer", "minimum": 1},
                        "verify": {"type": "boolean"},
                        "route": {"enum": ["auto", "lambda", "spot"], "default": "auto",
                                  "description": "Where tiles run on AWS: chosen per tile by size (auto), or forced"},
                        "grid": {"oneOf": [{"type": "integer", "minimum": 1},
                                           {"type": "array", "items": {"type": "integer", "minimum": 1}}]},
                        "atoms": {"oneOf": [
                            {"type": "object", "properties": {"count": {"type": "integer", "minimum": 1},
                                                              "seed": {"type": "integer", "minimum": 0}}},
                            {"type": "object", "properties": {"file": {"type": "string"}}}]},
                        "origin": {"type": "array", "items": {"type": "number"}},
                        "spacing": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                        "softening": {"type": "number", "minimum": 0},
                        "precision": {"enum": ["float32", "float64"]},
                        "field_out": {"type": "string"},
                    },
                },
                "Job": {
                    "type": "object",
                    "properties": {
                        "job_id": {"type": "string"},
                        "kind": {"type": "string"},
                        "status": {"enum": ["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]},
                        "spec": {"type": "object"},
                        "progress": {"type": "object", "properties": {
                            "tiles_done": {"type": "integer"}, "tiles_total": {"type": "integer"},
                            "units_done": {"type": "integer"}, "units_total": {"type": "integer"},
                            "percent": {"type": "number"}, "eta_s": {"type": "number", "nullable": True}}},
                        "timings": {"type": "object"},
                        "result": {"type": "object", "nullable": True},
                        "error": {"type": "object", "nullable": True},
                        "links": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
            }
        },
    }

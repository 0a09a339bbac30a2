"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.Config = exports.BDT = void 0;
var bdt_1 = require("./bdt");
Object.defineProperty(exports, "BDT", { enumerable: true, get: function () { return __importDefault(bdt_1).default; } });
var Config_1 = require("./Config");
Object.defineProperty(exports, "Config", { enumerable: true, get: function () { return __importDefault(Config_1).default; } });
//# sourceMappingURL=index.js.map
//! Every file in `shared/samples/push`: capture → request classification → body parser → typed values → the
//! reply the server should give. Read in place from `../shared` beside the repository.

use std::collections::BTreeSet;

use chrono::{NaiveDate, NaiveDateTime};
use zk_push::attlog::{parse_attlog, AttlogRecord};
use zk_push::command::encode_command_reply;
use zk_push::devicecmd::parse_command_results;
use zk_push::info::parse_info;
use zk_push::operlog::{parse_operlog, OperlogRecord, PhotoKind, TemplateKind};
use zk_push::options::parse_options;
use zk_push::photo::{parse_attphoto, PhotoError};
use zk_push::query::Query;
use zk_push::reply::{
    encode_ok_count, encode_rtdata_time, encode_server_time, old_decode_time, OptionsReply, OK,
};
use zk_push::request::{parse_request, Handshake, Request, RequestError, Table};
use zk_push::sample::{parse_captured_request, CapturedRequest};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/samples/push/");

/// Every sample this file asserts on; `every_sample_is_covered` keeps it equal to the folder.
const COVERED: &[&str] = &[
    "att01_handshake_2.2.14_pushcommkey.txt",
    "att02_getrequest_INFO.txt",
    "att03_ATTLOG_7col_batch9.txt",
    "att04_ATTPHOTO.txt",
    "att05_OPERLOG_OPLOG.txt",
    "att06_OPERLOG_USER_x2.txt",
    "att07_IDCARD_pid.txt",
    "att09_options_push.txt",
    "fld01_X100C_handshake_pushver2.4.0.txt",
    "fld02_X100C_ATTLOG_trailing_tab.txt",
    "fld04_X100C_OPLOG_enrol_reply_OK_space.txt",
    "fld06_MB10VL_ATTLOG_single_checkout.txt",
    "fld07_SenseFace4A_handshake_query.txt",
    "fld09_ZK_0782232260009_ATTLOG_10col.txt",
    "fld11_SpeedFaceV5L_options_ZAM180.txt",
    "fld13_SenseFace2A_PushOptions_reply_Thai.txt",
    "fld15_SpeedFaceV5L_RFID_shell_result.txt",
    "fld16_SpeedFaceV5L_RFID_putfile_fetch.txt",
    "fld17_SpeedFaceV5L_RFID_registry_body.txt",
    "fw01_getrequest_INFO_format.txt",
    "fw02_devicecmd_INFO_result_format.txt",
    "fw03_devicecmd_VERIFY_SUM_format.txt",
    "sec01_handshake_3.0.1_unregistered.txt",
    "sec02_registry_F20M.txt",
    "sec03_push_config.txt",
    "sec04_options_ProBio_ZMM220.txt",
    "sec05_ping_token.txt",
    "sec06_rtlog_event27.txt",
    "sec07_rtstate.txt",
    "sec08_devicecmd.txt",
    "sec09_tabledata_user.txt",
    "sec10_tabledata_templatev10.txt",
    "sec11_tabledata_biophoto.txt",
    "sec12_tabledata_ATTPHOTO_snapshot.txt",
    "sec13_tabledata_userpic.txt",
    "sec14_tabledata_biodata_palm.txt",
    "sec15_tabledata_errorlog.txt",
    "sec16_getrequest_SET_OPTIONS.txt",
    "sec17_querydata_count_user.txt",
    "sec18_querydata_users.txt",
    "sec19_querydata_transaction.txt",
    "sec20_exchange_publickey.txt",
    "sec21_rtdata_time.txt",
    "us01_handshake_request_format.txt",
    "us02_ATTLOG_5col_workcode.txt",
    "us05_getrequest_INFO_fw680.txt",
    "us06_time_request.txt",
    "us07_devicecmd_shell.txt",
    "zkeco01_fdata_photo_legacy.txt",
    "zkeco02_remote_att_user.txt",
];

fn load(name: &str) -> CapturedRequest {
    let bytes = std::fs::read(format!("{SAMPLES}{name}")).unwrap();
    parse_captured_request(&bytes).unwrap()
}

fn classify(req: &CapturedRequest) -> Result<(String, Request), RequestError> {
    parse_request(&req.method, req.path(), &Query::parse(req.raw_query()))
}

fn expected(req: &CapturedRequest) -> String {
    String::from_utf8(req.expected_response.clone().unwrap()).unwrap()
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, mo, d)
        .unwrap()
        .and_hms_opt(h, mi, s)
        .unwrap()
}

fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `Key=Value` lines of an options block, first line (`GET OPTION FROM:`) excluded.
fn option_lines(block: &str) -> Vec<(String, String)> {
    block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn records(body: &[u8]) -> Vec<AttlogRecord> {
    parse_attlog(body).into_iter().map(Result::unwrap).collect()
}

fn operlog(body: &[u8]) -> Vec<OperlogRecord> {
    parse_operlog(body)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn every_sample_is_covered() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(SAMPLES)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".txt"))
        .collect();
    let covered: BTreeSet<String> = COVERED.iter().map(|s| s.to_string()).collect();
    assert_eq!(on_disk, covered);
    for name in COVERED {
        let bytes = std::fs::read(format!("{SAMPLES}{name}")).unwrap();
        assert!(parse_captured_request(&bytes).is_ok(), "{name}");
    }
}

// ---- att (SPEC-ATT) -------------------------------------------------------------------------------------

#[test]
fn att01_handshake_with_pushcommkey() {
    let req = load("att01_handshake_2.2.14_pushcommkey.txt");
    assert_eq!(req.method, "GET");
    assert_eq!(req.header("User-Agent"), Some("iClock Proxy/1.09"));
    assert!(req.body.is_empty());
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "0316144680030");
    assert_eq!(
        request,
        Request::Handshake(Handshake {
            push_version: Some("2.2.14".into()),
            language: Some("83".into()),
            device_type: None,
            push_options_flag: false,
            push_comm_key: Some("4a9594af164f2b9779b59e8554b5df26".into()),
        })
    );
    // The vendor's reply: every key it sends, ours sends too, with the same value where we share the policy.
    let vendor = expected(&req);
    assert!(vendor.starts_with("GET OPTION FROM: 0316144680030\nATTLOGStamp=None\n"));
    let mut ours = OptionsReply::new(&sn, 480);
    ours.stamps = vec![
        ("ATTLOG".into(), "None".into()),
        ("OPERLOG".into(), "9999".into()),
        ("ATTPHOTO".into(), "None".into()),
    ];
    ours.trans_flag =
        "TransData AttLog\tOpLog\tAttPhoto\tEnrollUser\tChgUser\tEnrollFP\tChgFP\tUserPic".into();
    let ours = ours.encode();
    assert!(ours.starts_with("GET OPTION FROM: 0316144680030\n"));
    let ours_lines = option_lines(&ours);
    for (key, vendor_value) in option_lines(&vendor) {
        assert_eq!(
            value(&ours_lines, &key),
            Some(vendor_value.as_str()),
            "{key}"
        );
    }
}

#[test]
fn att02_getrequest_with_info() {
    let req = load("att02_getrequest_INFO.txt");
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "0316144680030");
    let Request::Poll { info: Some(info) } = request else {
        panic!("{request:?}")
    };
    assert_eq!(info.firmware.as_deref(), Some("Ver 2.0.12-20150625"));
    assert_eq!(
        (info.user_count, info.fp_count, info.attlog_count),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(info.ip.as_deref(), Some("192.168.16.27"));
    assert_eq!(info.fp_alg_version.as_deref(), Some("10"));
    assert_eq!(info.face_alg_version.as_deref(), Some("7"));
    assert_eq!(info.faces_per_enrolment, Some(15));
    assert_eq!(info.face_count, Some(0));
    assert_eq!(info.support_flags.as_deref(), Some("111"));
    assert_eq!(expected(&req), OK);
}

#[test]
fn att03_attlog_batch_of_nine() {
    let req = load("att03_ATTLOG_7col_batch9.txt");
    assert_eq!(req.body.len(), 315);
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "0316144680030");
    assert_eq!(
        request,
        Request::Upload {
            table: Table::AttLog,
            stamp: Some("9999".into())
        }
    );
    let punches = records(&req.body);
    let pins: Vec<&str> = punches.iter().map(|p| p.pin.as_str()).collect();
    assert_eq!(
        pins,
        ["1452", "1452", "1452", "1452", "1452", "1452", "1452", "8965", "8965"]
    );
    let seconds: Vec<u32> = punches
        .iter()
        .map(|p| chrono::Timelike::second(&p.time))
        .collect();
    assert_eq!(seconds, [28, 29, 30, 31, 33, 34, 35, 36, 37]);
    assert_eq!(
        punches[0],
        AttlogRecord {
            pin: "1452".into(),
            time: at(2015, 7, 30, 15, 16, 28),
            status: Some(0),
            verify: Some(1),
            work_code: Some("0".into()),
            extra: vec!["0".into(), "0".into()],
            line: "1452\t2015-07-30 15:16:28\t0\t1\t0\t0\t0".into(),
        }
    );
    assert_eq!(encode_ok_count(punches.len()), expected(&req));
    assert_eq!(expected(&req), "OK:9");
}

#[test]
fn att04_attphoto_framing() {
    let req = load("att04_ATTPHOTO.txt");
    let (_, request) = classify(&req).unwrap();
    assert_eq!(
        request,
        Request::Upload {
            table: Table::AttPhoto,
            stamp: Some("9999".into())
        }
    );
    let photo = parse_attphoto(&req.body, None).unwrap();
    assert_eq!(photo.file_name, "20150731103012-123.jpg");
    assert_eq!(photo.pin.as_deref(), Some("123"));
    assert_eq!(photo.taken_at, Some(at(2015, 7, 31, 10, 30, 12)));
    assert_eq!(photo.sn.as_deref(), Some("0316144680030"));
    assert_eq!(photo.declared_size, Some(9512));
    assert_eq!(photo.cmd.as_deref(), Some("uploadphoto"));
    // The document omits the JPEG; the placeholder text is kept as sent.
    assert_eq!(photo.jpeg, b"[9512 bytes of JPEG data omitted]\n");
    assert_eq!(expected(&req), OK);
}

#[test]
fn att05_operlog_oplog() {
    let req = load("att05_OPERLOG_OPLOG.txt");
    let (_, request) = classify(&req).unwrap();
    assert_eq!(
        request,
        Request::Upload {
            table: Table::OperLog,
            stamp: Some("9999".into())
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Oplog(oplog)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(oplog.op_type, 4);
    assert_eq!(oplog.operator, "14");
    assert_eq!(oplog.time, at(2015, 7, 30, 10, 22, 34));
    assert_eq!(oplog.objects, vec!["0", "0", "0", "0"]);
    assert_eq!(encode_ok_count(lines.len()), expected(&req));
}

#[test]
fn att06_operlog_two_users() {
    let req = load("att06_OPERLOG_USER_x2.txt");
    let lines = operlog(&req.body);
    let users: Vec<_> = lines
        .iter()
        .map(|l| match l {
            OperlogRecord::User(u) => u,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].pin, "36234");
    assert_eq!(users[0].name, "36234");
    assert_eq!(users[0].privilege, Some(0));
    assert_eq!(users[0].password, "");
    assert_eq!(users[0].card, "133440");
    assert_eq!(users[0].group, "1");
    assert_eq!(users[0].time_zones, "0001000000000000");
    assert_eq!(users[0].verify_mode, None);
    assert_eq!(users[0].vice_card, "");
    assert_eq!(users[1].pin, "36235");
    assert_eq!(users[1].card, "133441");
    assert_eq!(encode_ok_count(lines.len()), expected(&req));
}

#[test]
fn att07_idcard_utf8_chinese() {
    let req = load("att07_IDCARD_pid.txt");
    let (_, request) = classify(&req).unwrap();
    assert_eq!(
        request,
        Request::Upload {
            table: Table::IdCard,
            stamp: Some("9999".into())
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Other { tag, fields }] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(tag, "IDCARD");
    assert_eq!(value(fields, "PIN"), Some("2"));
    assert_eq!(value(fields, "Name"), Some("张三"));
    assert_eq!(value(fields, "Issuer"), Some("xxx县公安局"));
    assert_eq!(value(fields, "Birthday"), Some("19911218"));
    assert_eq!(value(fields, "Notice"), Some(""));
    assert_eq!(fields.len(), 17);
    assert_eq!(encode_ok_count(lines.len()), expected(&req));
}

#[test]
fn att09_options_push() {
    let req = load("att09_options_push.txt");
    let (_, request) = classify(&req).unwrap();
    assert_eq!(
        request,
        Request::Upload {
            table: Table::Options,
            stamp: None
        }
    );
    // Content-Length 26 in the document is wrong (the body is 44 bytes): every byte is kept.
    assert_eq!(
        parse_options(&req.body),
        kv(&[
            ("FingerFunOn", "1"),
            ("FaceFunOn", "1"),
            ("UserPicURLFunOn", "1")
        ])
    );
    assert_eq!(expected(&req), OK);
}

// ---- FIELD captures -----------------------------------------------------------------------------------

#[test]
fn fld01_x100c_handshake() {
    let req = load("fld01_X100C_handshake_pushver2.4.0.txt");
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "SERIAL87654321");
    assert_eq!(
        request,
        Request::Handshake(Handshake {
            push_version: Some("2.4.0".into()),
            language: Some("73".into()),
            ..Handshake::default()
        })
    );
    let vendor = option_lines(&expected(&req));
    assert_eq!(value(&vendor, "TimeZone"), Some("7"));
    let ours = option_lines(&OptionsReply::new(&sn, 7 * 60).encode());
    assert_eq!(value(&ours, "TimeZone"), Some("7"));
    // The Express reply lacked ServerVer, which made the device fall back to OpStamp (fld04); ours has it.
    assert_eq!(value(&vendor, "ServerVer"), None);
    assert_eq!(value(&ours, "ServerVer"), Some("2.4.1"));
}

#[test]
fn fld02_x100c_attlog_trailing_tab() {
    let req = load("fld02_X100C_ATTLOG_trailing_tab.txt");
    assert_eq!(req.body, b"1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t\n");
    let (sn, _) = classify(&req).unwrap();
    assert_eq!(sn, "SERIAL87654321");
    assert_eq!(
        records(&req.body),
        vec![AttlogRecord {
            pin: "1156".into(),
            time: at(2024, 8, 5, 12, 40, 57),
            status: Some(1),
            verify: Some(1),
            work_code: None,
            extra: vec!["0".into(), "0".into()],
            line: "1156\t2024-08-05 12:40:57\t1\t1\t\t0\t0\t".into(),
        }]
    );
    assert_eq!(encode_ok_count(1), "OK:1");
}

#[test]
fn fld04_x100c_oplog_with_opstamp() {
    let req = load("fld04_X100C_OPLOG_enrol_reply_OK_space.txt");
    let (_, request) = classify(&req).unwrap();
    assert_eq!(
        request,
        Request::Upload {
            table: Table::OperLog,
            stamp: Some("9999".into())
        }
    );
    let lines = operlog(&req.body);
    let codes: Vec<(u16, NaiveDateTime, String)> = lines
        .iter()
        .map(|l| match l {
            OperlogRecord::Oplog(o) => (o.op_type, o.time, o.objects[0].clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (30, at(2024, 8, 5, 12, 48, 25), "1160".to_string()),
            (6, at(2024, 8, 5, 12, 48, 25), "1160".to_string()),
        ]
    );
    // The Express server answered "OK: 2"; we answer the documented form.
    assert_eq!(expected(&req), "OK: 2");
    assert_eq!(encode_ok_count(lines.len()), "OK:2");
}

#[test]
fn fld06_mb10vl_eleven_columns() {
    let req = load("fld06_MB10VL_ATTLOG_single_checkout.txt");
    assert_eq!(
        req.target,
        "/iclock/cdata?SN=CNYG213260182&table=ATTLOG&Stamp=9999"
    );
    assert_eq!(req.header("Content-Type"), Some("text/plain"));
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "CNYG213260182");
    assert!(matches!(
        request,
        Request::Upload {
            table: Table::AttLog,
            ..
        }
    ));
    let punches = records(&req.body);
    assert_eq!(punches.len(), 1);
    assert_eq!(punches[0].pin, "36");
    assert_eq!(punches[0].time, at(2025, 1, 29, 12, 11, 56));
    assert_eq!((punches[0].status, punches[0].verify), (Some(1), Some(15)));
    assert_eq!(punches[0].work_code.as_deref(), Some("0"));
    assert_eq!(punches[0].extra, vec!["0", "0", "0", "0", "0", "10904"]);
}

#[test]
fn fld07_senseface4a_handshake() {
    let req = load("fld07_SenseFace4A_handshake_query.txt");
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "PYA8262300072");
    assert_eq!(
        request,
        Request::Handshake(Handshake {
            push_version: Some("2.4.1".into()),
            language: Some("69".into()),
            device_type: Some("att".into()),
            push_options_flag: true,
            push_comm_key: None,
        })
    );
    let vendor = option_lines(&expected(&req));
    assert_eq!(value(&vendor, "TransFlag"), Some("1111000000"));
    assert_eq!(value(&vendor, "TimeZone"), Some("8"));
    assert_eq!(
        value(
            &option_lines(&OptionsReply::new(&sn, 480).encode()),
            "TimeZone"
        ),
        Some("8")
    );
}

#[test]
fn fld09_ten_columns_status_255() {
    let req = load("fld09_ZK_0782232260009_ATTLOG_10col.txt");
    assert_eq!(req.body.len(), 44);
    assert_eq!(req.header("Content-Type"), Some("text/plain"));
    let (sn, _) = classify(&req).unwrap();
    assert_eq!(sn, "0782232260009");
    let punches = records(&req.body);
    assert_eq!(
        punches,
        vec![AttlogRecord {
            pin: "3".into(),
            time: at(2023, 10, 16, 8, 38, 16),
            status: Some(255),
            verify: Some(15),
            work_code: Some("0".into()),
            extra: vec!["0", "0", "255", "0", "0"]
                .into_iter()
                .map(String::from)
                .collect(),
            line: "3\t2023-10-16 08:38:16\t255\t15\t0\t0\t0\t255\t0\t0\t".into(),
        }]
    );
}

#[test]
fn fld11_speedface_options_comma_in_value() {
    let req = load("fld11_SpeedFaceV5L_options_ZAM180.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "<SN>");
    let options = parse_options(&req.body);
    assert_eq!(options.len(), 43);
    assert_eq!(
        options[0],
        ("~DeviceName".to_string(), "SpeedFace-V5L".to_string())
    );
    assert_eq!(value(&options, "~OEMVendor"), Some("ZKTECO CO., LTD."));
    assert_eq!(value(&options, "FWVersion"), Some("ZAM180-NF50VA-Ver3.4.9"));
    assert_eq!(value(&options, "PushVersion"), Some("Ver 2.0.33S-20220623"));
    assert_eq!(value(&options, "RegDeviceType"), Some(""));
    assert_eq!(value(&options, "MAC"), Some("00:17:61:13:20:21"));
    assert_eq!(
        options.last(),
        Some(&("RoomStatus".to_string(), "0".to_string()))
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn fld13_senseface2a_options() {
    let req = load("fld13_SenseFace2A_PushOptions_reply_Thai.txt");
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "NYU7253100765");
    assert_eq!(
        request,
        Request::Upload {
            table: Table::Options,
            stamp: None
        }
    );
    let options = parse_options(&req.body);
    assert_eq!(options.len(), 39);
    assert_eq!(value(&options, "~OEMVendor"), Some("ZKTECO CO."));
    assert_eq!(value(&options, "Language"), Some("76"));
    assert_eq!(value(&options, "TransactionCount"), Some("1342"));
    assert_eq!(value(&options, "~MaxPvCount"), Some(""));
    assert_eq!(
        value(&options, "MultiBioVersion"),
        Some("0:13.0:0:0:0:0:0:0:0:40.1")
    );
    assert_eq!(
        value(&options, "MultiBioDataCount"),
        Some("0:18:0:0:0:0:0:0:0:0")
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn fld15_shell_result_newline_form() {
    let req = load("fld15_SpeedFaceV5L_RFID_shell_result.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "<SN>");
    let results = parse_command_results(&req.body);
    assert_eq!(results.len(), 1);
    let result = results[0].as_ref().unwrap();
    assert_eq!(result.id, "32");
    assert_eq!(result.return_code, 0);
    assert_eq!(result.cmd, "Shell");
    assert!(result.fields.is_empty());
    assert_eq!(
        result.content.as_deref(),
        Some(&b"Tue Mar 24 16:12:26 GMT 2026\n"[..])
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn fld16_putfile_fetch_has_no_sn() {
    let req = load("fld16_SpeedFaceV5L_RFID_putfile_fetch.txt");
    assert_eq!(req.path(), "/iclock/FileName=options.cfg");
    assert_eq!(req.raw_query(), "");
    assert_eq!(classify(&req), Err(RequestError::MissingSn));
}

#[test]
fn fld17_registry_body() {
    let req = load("fld17_SpeedFaceV5L_RFID_registry_body.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "<SN>");
    let (_, request) = parse_request(&req.method, req.path(), &Query::parse("SN=ABC123")).unwrap();
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "registry".into()
        }
    );
    assert_eq!(
        parse_options(&req.body),
        kv(&[
            ("DeviceType", "acc"),
            ("~DeviceName", "SpeedFace-V5L-RFID[TI]"),
            ("FirmVer", "ZAM180..."),
            ("IPAddress", "192.168.1.201"),
        ])
    );
}

// ---- FW formats (placeholders) ------------------------------------------------------------------------

#[test]
fn fw01_info_field_order() {
    let req = load("fw01_getrequest_INFO_format.txt");
    assert_eq!(
        classify(&req),
        Err(RequestError::NotIclock("<root>getrequest".into()))
    );
    let info = parse_info(Query::parse(req.raw_query()).get("INFO").unwrap());
    assert_eq!(info.firmware.as_deref(), Some("<fw_ver>"));
    assert_eq!(info.ip.as_deref(), Some("<ip>"));
    assert_eq!(info.fp_alg_version.as_deref(), Some("<zk_fp_ver>"));
    assert_eq!(info.face_alg_version.as_deref(), Some("<ZKFaceVer>"));
    assert_eq!(info.support_flags.as_deref(), Some("<dev_support_data>"));
    assert_eq!(info.user_count, None);
}

#[test]
fn fw02_info_result_layout() {
    let req = load("fw02_devicecmd_INFO_result_format.txt");
    assert_eq!(
        classify(&req),
        Err(RequestError::NotIclock("<root>devicecmd".into()))
    );
    let results = parse_command_results(&req.body);
    assert_eq!(results.len(), 1);
    let result = results[0].as_ref().unwrap();
    assert_eq!(
        (result.id.as_str(), result.return_code, result.cmd.as_str()),
        ("<id>", 0, "INFO")
    );
    let keys: Vec<&str> = result.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "<every options.cfg Key",
            "TransactionCount",
            "FPCount",
            "UserCount",
            "MainTime",
            "FlashSize",
            "FreeFlashSize",
            "FWVersion"
        ]
    );
    assert_eq!(
        value(&result.fields, "MainTime"),
        Some("YYYY-MM-DD HH:MM:SS")
    );
    assert!(expected(&req).starts_with("OK"));
}

#[test]
fn fw03_verify_sum_layout() {
    let req = load("fw03_devicecmd_VERIFY_SUM_format.txt");
    let results = parse_command_results(&req.body);
    assert_eq!(results.len(), 1);
    // `<ret>` is a placeholder, so the one result is rejected with a reason, not lost silently.
    let err = results[0].as_ref().unwrap_err();
    assert_eq!(err.reason, "non-numeric Return \"<ret>\"");
    assert_eq!(err.line_no, 1);
    // The same line with real values.
    let real = String::from_utf8(req.body.clone())
        .unwrap()
        .replace("<id>", "12")
        .replace("<ret>", "0")
        .replace("<t1>", "2024-01-01 00:00:00")
        .replace("<t2>", "2024-01-31 23:59:59")
        .replace("<n>", "42");
    let results = parse_command_results(real.as_bytes());
    let result = results[0].as_ref().unwrap();
    assert_eq!(result.cmd, "VERIFY SUM ATTLOG");
    assert_eq!(value(&result.fields, "AttlogCount"), Some("42"));
    assert_eq!(
        value(&result.fields, "EndTime"),
        Some("2024-01-31 23:59:59")
    );
}

// ---- 3.x security dialect ------------------------------------------------------------------------------

fn security(name: &str) -> (CapturedRequest, String, Request) {
    let req = load(name);
    let (sn, request) = classify(&req).unwrap();
    (req, sn, request)
}

#[test]
fn sec01_handshake_is_a_handshake() {
    let (req, sn, request) = security("sec01_handshake_3.0.1_unregistered.txt");
    assert_eq!(sn, "3383154200002");
    assert_eq!(
        request,
        Request::Handshake(Handshake {
            push_version: Some("3.0.1".into()),
            ..Handshake::default()
        })
    );
    assert_eq!(req.header("Connection"), Some("starting"));
    assert_eq!(expected(&req), OK);
}

#[test]
fn sec02_registry() {
    let (req, _, request) = security("sec02_registry_F20M.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "registry".into()
        }
    );
    let capabilities = parse_options(&req.body);
    assert_eq!(capabilities.len(), 65);
    assert_eq!(value(&capabilities, "DeviceType"), Some("acc"));
    assert_eq!(value(&capabilities, "~DeviceName"), Some("F20/M"));
    assert_eq!(
        value(&capabilities, "FirmVer"),
        Some("Ver 8.0.1.3-20151229")
    );
    assert_eq!(value(&capabilities, "authKey"), Some("dassas"));
    assert_eq!(expected(&req), "RegistryCode=Uy47fxftP3");
}

#[test]
fn sec03_push_config() {
    let (req, _, request) = security("sec03_push_config.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "push".into()
        }
    );
    assert!(req.body.is_empty());
    assert!(expected(&req).starts_with("ServerVersion=3.0.1\nServerName=ADMS\n"));
}

#[test]
fn sec04_options_probio() {
    let (req, sn, request) = security("sec04_options_ProBio_ZMM220.txt");
    assert_eq!(sn, "AJI6181160001");
    assert_eq!(
        request,
        Request::Upload {
            table: Table::Options,
            stamp: None
        }
    );
    let options = parse_options(&req.body);
    assert_eq!(options.len(), 30);
    assert_eq!(value(&options, "~OEMVendor"), Some("ZKTeco Inc. "));
    assert_eq!(value(&options, "~Platform"), Some("ZMM220_TFT"));
    assert_eq!(value(&options, "PushVersion"), Some("Ver 2.0.34-20180822"));
    assert_eq!(expected(&req), OK);
}

#[test]
fn sec05_ping() {
    let (req, sn, request) = security("sec05_ping_token.txt");
    assert_eq!((sn.as_str(), request), ("3383154200002", Request::Ping));
    assert_eq!(
        req.header("Cookie"),
        Some("token=cb386eb5f8219329db63356fb262ddff")
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn sec06_sec07_realtime_tables() {
    let (req, _, request) = security("sec06_rtlog_event27.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "rtlog".into()
        }
    );
    assert_eq!(expected(&req), OK);
    let (req, _, request) = security("sec07_rtstate.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "rtstate".into()
        }
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn sec08_devicecmd() {
    let (req, _, request) = security("sec08_devicecmd.txt");
    assert_eq!(request, Request::CommandResults);
    let results = parse_command_results(&req.body);
    assert_eq!(results.len(), 1);
    let result = results[0].as_ref().unwrap();
    assert_eq!(
        (result.id.as_str(), result.return_code, result.cmd.as_str()),
        ("1", 0, "DATA UPDATE")
    );
    assert_eq!(expected(&req), OK);
}

#[test]
fn sec09_tabledata_user() {
    let (req, _, request) = security("sec09_tabledata_user.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/user".into()
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::User(user)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(user.pin, "4");
    assert_eq!(user.privilege, Some(0));
    assert_eq!(user.group, "1");
    assert_eq!(user.verify_mode, Some(0));
    assert_eq!(value(&user.fields, "uid"), Some("5"));
    assert_eq!(expected(&req), "user=1");
}

#[test]
fn sec10_tabledata_templatev10() {
    let (req, _, request) = security("sec10_tabledata_templatev10.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/templatev10".into()
        }
    );
    let lines = operlog(&req.body);
    assert_eq!(lines.len(), 2);
    let OperlogRecord::Other { tag, fields } = &lines[1] else {
        panic!("{lines:?}")
    };
    assert_eq!(tag, "templatev10");
    assert_eq!(value(fields, "fingerid"), Some("6"));
    assert_eq!(value(fields, "size"), Some("1928"));
    assert_eq!(expected(&req), format!("templatev10={}", lines.len()));
}

#[test]
fn sec11_sec13_tabledata_photos() {
    let (req, _, request) = security("sec11_tabledata_biophoto.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/biophoto".into()
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Photo(photo)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(photo.kind, PhotoKind::BioPhoto);
    assert_eq!(
        (photo.pin.as_str(), photo.file_name.as_str()),
        ("123", "123.jpg")
    );
    assert_eq!(photo.size, Some(95040));
    assert_eq!(photo.content_base64, "AAAA........");
    assert_eq!(expected(&req), "biophoto=1");

    let (req, sn, request) = security("sec13_tabledata_userpic.txt");
    assert_eq!(sn, "1809140006");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/userpic".into()
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Photo(photo)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(photo.kind, PhotoKind::UserPic);
    assert_eq!((photo.pin.as_str(), photo.size), ("1", Some(22320)));
    assert!(photo.content_base64.starts_with("/9j/4AAQ"));
    assert_eq!(expected(&req), "userpic=1");
}

#[test]
fn sec12_tabledata_attphoto_is_not_an_operlog_body() {
    let (req, _, request) = security("sec12_tabledata_ATTPHOTO_snapshot.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/ATTPHOTO".into()
        }
    );
    // Tab-separated key=value without a tag: the OPERLOG parser says so instead of guessing.
    let lines = parse_operlog(&req.body);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        lines[0].as_ref().unwrap_err().reason,
        "unrecognised line tag \"pin=20181003143617-22.jpg\""
    );
    assert_eq!(expected(&req), "ATTPHOTO=1");
}

#[test]
fn sec14_tabledata_biodata_palm() {
    let (req, _, request) = security("sec14_tabledata_biodata_palm.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/biodata".into()
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Template(template)] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(template.kind, TemplateKind::Bio { bio_type: 8 });
    assert_eq!(
        (template.pin.as_str(), template.no, template.index),
        ("1", 0, 0)
    );
    assert_eq!((template.valid, template.duress), (Some(1), false));
    assert_eq!(template.major_ver.as_deref(), Some("5"));
    assert_eq!(template.minor_ver.as_deref(), Some("0"));
    assert_eq!(template.format, Some(0));
    assert!(template.template.starts_with("apUBD+cAC44IAAEAAJfKWlBW"));
    assert_eq!(expected(&req), "biodata=1");
}

#[test]
fn sec15_tabledata_errorlog() {
    let (req, _, request) = security("sec15_tabledata_errorlog.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "tabledata/errorlog".into()
        }
    );
    assert_eq!(
        operlog(&req.body),
        vec![OperlogRecord::Other {
            tag: "errorlog".into(),
            fields: kv(&[
                ("errcode", "D01E0001"),
                ("errmsg", ""),
                ("dataorigin", "cmd"),
                ("cmdid", "123"),
                ("additional", ""),
            ]),
        }]
    );
    assert_eq!(expected(&req), "errorlog=1");
}

#[test]
fn sec16_getrequest_answered_with_a_command() {
    let (req, _, request) = security("sec16_getrequest_SET_OPTIONS.txt");
    assert_eq!(request, Request::Poll { info: None });
    let text =
        "SET OPTIONS IPAddress=192.168.213.222,GATEIPAddress=192.168.213.1,NetMask=255.255.255.0";
    let (reply, included) = encode_command_reply(&[(223, text.to_string())], 40 * 1024);
    assert_eq!(included, 1);
    assert_eq!(reply, format!("{}\n", expected(&req)));
}

#[test]
fn sec17_to_sec19_querydata() {
    let (req, _, request) = security("sec17_querydata_count_user.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "querydata/count/user".into()
        }
    );
    assert_eq!(parse_options(&req.body), kv(&[("user", "5")]));
    assert_eq!(expected(&req), OK);

    let (req, _, request) = security("sec18_querydata_users.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "querydata/tabledata/user".into()
        }
    );
    let pins: Vec<String> = operlog(&req.body)
        .into_iter()
        .map(|l| match l {
            OperlogRecord::User(u) => u.pin,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(pins, ["1", "2", "3"]);
    assert_eq!(expected(&req), "user=3");

    let (req, _, request) = security("sec19_querydata_transaction.txt");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "querydata/tabledata/transaction".into()
        }
    );
    let lines = operlog(&req.body);
    let [OperlogRecord::Other { tag, fields }] = lines.as_slice() else {
        panic!("{lines:?}")
    };
    assert_eq!(tag, "transaction");
    assert_eq!(value(fields, "time_second"), Some("548003688"));
    assert_eq!(expected(&req), "transaction=1");
}

#[test]
fn sec20_exchange() {
    let (req, sn, request) = security("sec20_exchange_publickey.txt");
    assert_eq!(sn, "ODG7030067031100001");
    assert_eq!(
        request,
        Request::SecurityDialect {
            what: "exchange/publickey".into()
        }
    );
    assert!(req.body.starts_with(b"PublicKey=DMCtR13R"));
}

#[test]
fn sec21_rtdata_time() {
    let (req, _, request) = security("sec21_rtdata_time.txt");
    assert_eq!(request, Request::RtdataTime);
    let utc = old_decode_time(583_050_990).unwrap();
    assert_eq!(encode_rtdata_time(utc, 480), expected(&req));
}

// ---- SPEC-US formats -----------------------------------------------------------------------------------

#[test]
fn us01_handshake_template() {
    let req = load("us01_handshake_request_format.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "%s");
    let (_, request) = parse_request(
        &req.method,
        req.path(),
        &Query::parse("SN=X1&options=all&pushver=%s"),
    )
    .unwrap();
    assert!(matches!(request, Request::Handshake(_)));
    // SPEC-US documents TimeZone=-05:00, which FW reads as hours only; we send -5.
    let vendor = option_lines(&expected(&req));
    assert_eq!(value(&vendor, "TimeZone"), Some("-05:00"));
    let ours = option_lines(&OptionsReply::new("X1", -300).encode());
    assert_eq!(value(&ours, "TimeZone"), Some("-5"));
}

#[test]
fn us02_five_columns_datetime_stamp() {
    let req = load("us02_ATTLOG_5col_workcode.txt");
    assert!(req.headers.is_empty());
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "12300001");
    assert_eq!(
        request,
        Request::Upload {
            table: Table::AttLog,
            stamp: Some("2008-02-25T12:08:21".into())
        }
    );
    let punches = records(&req.body);
    assert_eq!(punches.len(), 2);
    assert_eq!(punches[1].pin, "982");
    assert_eq!(punches[1].time, at(2008, 2, 25, 18, 1, 9));
    assert_eq!((punches[1].status, punches[1].verify), (Some(1), Some(0)));
    assert_eq!(punches[1].work_code.as_deref(), Some("9001"));
    assert!(punches[1].extra.is_empty());
    // SPEC-US shows a bare OK; we always count (push.md §7, §13 item 8).
    assert_eq!(expected(&req), OK);
    assert_eq!(encode_ok_count(punches.len()), "OK:2");
}

#[test]
fn us05_nine_field_info() {
    let req = load("us05_getrequest_INFO_fw680.txt");
    assert_eq!(req.path(), "/iclock/getrequest");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "%s");
    let info = parse_info(Query::parse(req.raw_query()).get("INFO").unwrap());
    assert_eq!(info.firmware.as_deref(), Some("Ver 6.8.0(build640)"));
    assert_eq!(info.user_count, Some(2));
    assert_eq!(info.ip.as_deref(), Some("192.168.1.201"));
    assert_eq!(info.face_alg_version.as_deref(), Some("-1"));
    assert_eq!(info.faces_per_enrolment, Some(-12));
    assert_eq!(info.face_count, None);
    assert_eq!(info.support_flags.as_deref(), Some("101"));
}

#[test]
fn us06_server_time() {
    let req = load("us06_time_request.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "%s");
    let (_, request) =
        parse_request(&req.method, req.path(), &Query::parse("SN=A1&type=time")).unwrap();
    assert_eq!(request, Request::ServerTime);
    assert_eq!(
        encode_server_time(at(2011, 5, 5, 17, 40, 20), -300),
        expected(&req)
    );
}

#[test]
fn us07_shell_template() {
    let req = load("us07_devicecmd_shell.txt");
    assert_eq!(req.method, "POST");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "%s");
    let results = parse_command_results(&req.body);
    assert_eq!(results.len(), 1);
    assert_eq!(
        results[0].as_ref().unwrap_err().reason,
        "non-numeric Return \"%s\""
    );
    let real = String::from_utf8(req.body.clone())
        .unwrap()
        .replace("%d", "5")
        .replacen("%s", "A1", 1)
        .replacen("%s", "0", 1)
        .replacen("%s", "hello", 1);
    let results = parse_command_results(real.as_bytes());
    let result = results[0].as_ref().unwrap();
    assert_eq!((result.id.as_str(), result.return_code), ("5", 0));
    assert_eq!(
        result.fields,
        kv(&[("SN", "A1"), ("FILENAME", "shellout.txt")])
    );
    assert_eq!(result.content.as_deref(), Some(&b"hello\n"[..]));
    assert_eq!(expected(&req), OK);
}

// ---- ZKECO --------------------------------------------------------------------------------------------

#[test]
fn zkeco01_legacy_fdata_photo() {
    let req = load("zkeco01_fdata_photo_legacy.txt");
    let query = Query::parse(req.raw_query());
    let (sn, request) = classify(&req).unwrap();
    assert_eq!(sn, "88888888");
    assert_eq!(
        request,
        Request::PhotoUpload {
            stamp: Some("285528079".into())
        }
    );
    // The capture has no body; the same framing with a body parses with the query PIN as file name.
    assert_eq!(
        parse_attphoto(&req.body, query.get("PIN")),
        Err(PhotoError::Empty)
    );
    let photo = parse_attphoto(
        b"SN=88888888\nCMD=uploadphoto\0\xFF\xD8\xFF\xD9",
        query.get("PIN"),
    )
    .unwrap();
    assert_eq!(photo.file_name, "20081119172119-4.jpg");
    assert_eq!(photo.pin.as_deref(), Some("4"));
    assert_eq!(photo.taken_at, Some(at(2008, 11, 19, 17, 21, 19)));
    assert_eq!(photo.jpeg, [0xFF, 0xD8, 0xFF, 0xD9]);
    assert_eq!(expected(&req), OK);
}

#[test]
fn zkeco02_legacy_remote_att() {
    let req = load("zkeco02_remote_att_user.txt");
    // Placeholder SNs are visible ASCII, so they are accepted as opaque identifiers.
    assert_eq!(classify(&req).unwrap().0, "<SN>");
    let (_, request) =
        parse_request(&req.method, req.path(), &Query::parse("SN=A1&PIN=0042")).unwrap();
    assert_eq!(request, Request::RemoteAtt { pin: "0042".into() });
    assert!(expected(&req).starts_with("DATA USER PIN=<pin>\tName=<name>"));
}
